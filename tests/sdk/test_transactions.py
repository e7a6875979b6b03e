"""Transactions: task runs staged in a `with transaction():` block commit or roll back together."""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time

import pytest

from orchestrator.runs.models import TaskRun
from sdk import flow, task
from sdk.exceptions import TransactionCommitError
from sdk.filesystems import LocalFileSystem
from sdk.task_runners import ConcurrentTaskRunner
from sdk.transactions import get_transaction, transaction
from tests.sdk.conftest import REPO, latest_flow_run, logs_of, run_script, state_names


def recording_task(name: str, events: list[str]):
    """A task returning its argument, whose hooks append ("commit"|"rollback", its result) to `events`."""

    @task(name=name)
    def step(value):
        events.append(f"ran {value}")
        return value

    @step.on_commit
    def committed(txn):
        events.append(f"commit {txn.get('result')}")

    @step.on_rollback
    def rolled_back(txn):
        events.append(f"rollback {txn.get('result')}")

    return step


def test_commit_hooks_run_in_order_when_the_block_ends_well(unique_name):
    events: list[str] = []
    step = recording_task("step", events)

    @flow(name=unique_name)
    def pipeline():
        with transaction() as txn:
            step("a"), step("b"), step("c")
            events.append("block ends")
            assert txn.is_active()
        events.append(f"after the block, committed={txn.is_committed()}")

    pipeline()
    assert events == ["ran a", "ran b", "ran c", "block ends", "commit a", "commit b", "commit c",
                      "after the block, committed=True"]  # fmt: skip


def test_rollback_hooks_run_newest_first_and_the_error_propagates(unique_name):
    events: list[str] = []
    step = recording_task("step", events)

    @task
    def check():
        raise ValueError("quality check failed")

    @check.on_rollback
    def never(txn):  # the failed run did not complete: nothing of it to undo
        events.append("rollback of the failed run")

    @flow(name=unique_name)
    def pipeline():
        with transaction() as txn:
            step("a"), step("b"), step("c")
            check()
        return txn

    with pytest.raises(ValueError, match="quality check failed"):
        pipeline()
    assert events == ["ran a", "ran b", "ran c", "rollback c", "rollback b", "rollback a"]
    runs = TaskRun.objects.filter(flow_run=latest_flow_run(pipeline))
    assert {run.name: run.state_name for run in runs} == {
        "step-0": "RolledBack", "step-1": "RolledBack", "step-2": "RolledBack", "check-0": "Failed",
    }  # fmt: skip


def test_a_failing_rollback_hook_is_logged_and_the_others_still_run(unique_name):
    events: list[str] = []
    step = recording_task("step", events)

    @step.on_rollback
    def broken(txn):
        raise RuntimeError("cannot undo")

    @flow(name=unique_name)
    def pipeline():
        with transaction():
            step("a"), step("b")
            raise KeyError("the original error")

    with pytest.raises(KeyError, match="the original error"):
        pipeline()
    assert events == ["ran a", "ran b", "rollback b", "rollback a"]
    logs = logs_of(latest_flow_run(pipeline))
    assert sum("An error was encountered while running on_rollback hook 'broken'" in line for line in logs) == 2


def test_a_failing_commit_hook_rolls_the_transaction_back_and_says_so(unique_name):
    events: list[str] = []
    step = recording_task("step", events)

    @task
    def publish():
        return "published"

    @publish.on_commit
    def announce(txn):
        raise ConnectionError("mail server down")

    @flow(name=unique_name)
    def pipeline():
        with transaction(key=f"{unique_name}-key") as txn:
            step("a"), publish()
        return txn

    with pytest.raises(TransactionCommitError, match="ConnectionError: mail server down") as raised:
        pipeline()
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert events == ["ran a", "commit a", "rollback a"]
    with transaction(key=f"{unique_name}-key") as txn:  # no record was written
        assert not txn.is_committed()


def test_hooks_receive_values_set_in_the_block_and_in_the_task(unique_name):
    seen = {}

    @task
    def load(table: str) -> int:
        get_transaction().set("loaded_by", "load")
        return 3

    @load.on_commit
    def report(txn):
        seen.update(result=txn.get("result"), run=txn.task_run.name, batch=txn.get("batch"),
                    loaded_by=txn.get("loaded_by"), missing=txn.get("nothing", None))  # fmt: skip

    @flow(name=unique_name)
    def pipeline():
        with transaction() as txn:
            txn.set("batch", 17)
            load("orders")

    pipeline()
    assert seen == {"result": 3, "run": "load-0", "batch": 17, "loaded_by": "load", "missing": None}


def test_an_inner_transaction_commits_or_rolls_back_with_the_outer_one(unique_name):
    events: list[str] = []
    step = recording_task("step", events)

    @flow(name=unique_name)
    def pipeline(fail: bool):
        with transaction():
            step("outer")
            with transaction() as inner:
                step("inner")
            events.append(f"inner ended, committed={inner.is_committed()}")
            if fail:
                raise ValueError("after the inner block")
        events.append(f"outer ended, inner committed={inner.is_committed()}")

    pipeline(False)
    assert events == ["ran outer", "ran inner", "inner ended, committed=False",
                      "commit outer", "commit inner", "outer ended, inner committed=True"]  # fmt: skip
    events.clear()
    with pytest.raises(ValueError):
        pipeline(True)
    assert events == ["ran outer", "ran inner", "inner ended, committed=False", "rollback inner", "rollback outer"]


def test_an_inner_transaction_that_fails_rolls_back_its_own_runs_only(unique_name):
    events: list[str] = []
    step = recording_task("step", events)

    @flow(name=unique_name)
    def pipeline():
        with transaction():
            step("kept")
            try:
                with transaction():
                    step("undone")
                    raise ValueError("inner failure")
            except ValueError:
                events.append("handled")

    pipeline()
    assert events == ["ran kept", "ran undone", "rollback undone", "handled", "commit kept"]


def test_a_committed_keyed_transaction_is_not_repeated_on_a_rerun(unique_name):
    events: list[str] = []
    step = recording_task("step", events)
    key = f"{unique_name}-2024-06-01"

    @task
    def shape(rows: int) -> set[int]:  # not plain JSON: its result is pickled to result storage
        events.append("ran shape")
        return set(range(rows))

    @flow(name=unique_name)
    def pipeline():
        with transaction(key=key) as txn:
            first = step("a")
            rows = [future.result() for future in step.map(["b", "c"])]
            return txn.is_committed(), first, rows, shape(3), txn.record_path

    committed, first, rows, shaped, path = pipeline()
    assert (committed, first, rows, shaped) == (False, "a", ["b", "c"], {0, 1, 2})
    assert path.name == hashlib.sha256(key.encode()).hexdigest() + ".json" and path.parent.name == "transactions"
    assert path.parent.parent == LocalFileSystem().basepath
    record = json.loads(path.read_text())
    assert record["key"] == key and "committed" in record
    assert set(record["task_runs"]) == {f"{step.task_key}#0", f"{step.task_key}#1", f"{step.task_key}#2",
                                        f"{shape.task_key}#0"}  # fmt: skip
    ran = list(events)

    assert pipeline() == (True, "a", ["b", "c"], {0, 1, 2}, path)
    assert events == ran  # nothing ran again, no hook ran again
    rerun = TaskRun.objects.filter(flow_run=latest_flow_run(pipeline))
    assert {run.state_name for run in rerun} == {"Cached"} and rerun.count() == 4


def test_overwrite_runs_a_committed_transaction_again_and_rewrites_its_record(unique_name):
    runs = []

    @task
    def load() -> int:
        runs.append(1)
        return len(runs)

    @flow(name=unique_name)
    def pipeline(overwrite: bool) -> int:
        with transaction(key=unique_name, overwrite=overwrite):
            return load()

    assert pipeline(False) == 1
    assert pipeline(False) == 1
    assert pipeline(True) == 2
    assert pipeline(False) == 2 and len(runs) == 2


def test_a_rolled_back_keyed_transaction_runs_again_on_a_rerun(unique_name):
    runs = []

    @task
    def load() -> int:
        runs.append(1)
        return len(runs)

    @flow(name=unique_name)
    def pipeline() -> int:
        with transaction(key=unique_name) as txn:
            count = load()
            if count == 1:
                raise ValueError("first attempt fails after load")
        assert txn.is_committed()
        return count

    with pytest.raises(ValueError):
        pipeline()
    assert pipeline() == 2


def test_a_retried_flow_runs_its_rolled_back_task_runs_again(unique_name):
    runs = []

    @task
    def load() -> int:
        runs.append(1)
        return len(runs)

    @flow(name=unique_name, retries=1)
    def pipeline() -> int:
        with transaction():
            count = load()
            if count == 1:
                raise ValueError("the first attempt fails after load")
        return count

    assert pipeline() == 2  # the retry found load-0 RolledBack, not Completed: it ran again
    load_run = TaskRun.objects.get(flow_run=latest_flow_run(pipeline))
    assert state_names(load_run)[-4:] == ["Completed", "RolledBack", "Rerunning", "Completed"]


def test_submitted_task_runs_are_staged_in_order_of_completion_and_waited_for(unique_name):
    events: list[str] = []
    lock = threading.Lock()

    @task
    def sleepy(seconds: float) -> float:
        assert get_transaction() is not None  # the block's transaction follows the run into the pool's thread
        time.sleep(seconds)
        return seconds

    @sleepy.on_rollback
    def undo(txn):
        with lock:
            events.append(f"rollback {txn.get('result')}")

    @flow(name=unique_name, task_runner=ConcurrentTaskRunner(max_workers=3))
    def pipeline():
        with transaction():
            sleepy.submit(0.6), sleepy.submit(0.0), sleepy.submit(0.3)
            raise ValueError("failed before the runs ended")  # the block still waits for them

    with pytest.raises(ValueError):
        pipeline()
    assert events == ["rollback 0.6", "rollback 0.3", "rollback 0.0"]


def test_submitted_runs_of_a_committed_transaction_are_not_run_again(unique_name):
    runs = []

    @task
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    @flow(name=unique_name)
    def pipeline() -> list[int]:
        with transaction(key=unique_name):
            futures = double.map([1, 2, 3])
        return [f.result() for f in futures]

    assert pipeline() == [2, 4, 6]
    assert pipeline() == [2, 4, 6] and sorted(runs) == [1, 2, 3]


def test_hooks_are_kept_by_with_options(unique_name):
    events: list[str] = []
    step = recording_task("step", events).with_options(name="renamed")

    @flow(name=unique_name)
    def pipeline():
        with transaction():
            step("a")

    pipeline()
    assert events == ["ran a", "commit a"]


def test_a_transaction_works_in_an_async_flow(unique_name):
    events: list[str] = []

    @task
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n

    @fetch.on_commit
    def done(txn):
        events.append(txn.get("result"))

    @flow(name=unique_name)
    async def pipeline():
        with transaction():
            await fetch(1)
            await asyncio.gather(fetch(2), fetch(3))
        return sorted(events)

    assert asyncio.run(pipeline()) == [1, 2, 3]


def test_the_example_leaves_no_file_behind(tmp_path):
    target = tmp_path / "published.txt"
    code = f"import runpy, sys; sys.argv = ['x', {str(target)!r}]; " \
           f"runpy.run_path({str(REPO / 'examples' / 'transactional_write.py')!r}, run_name='__main__')"  # fmt: skip
    result = run_script(code, home=tmp_path / "home", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "publish ended Failed" in result.stdout and "exists: False" in result.stdout
    assert "Running on_rollback hook 'remove_file' of task run 'write_file-0'" in result.stderr
    assert not target.exists()


def test_a_run_whose_result_was_not_persisted_runs_again_on_a_rerun(unique_name):
    runs, commits = [], []

    @task(persist_result=False)
    def touch() -> int:
        runs.append(1)
        return len(runs)

    @touch.on_commit
    def committed(txn):
        commits.append(txn.get("result"))

    @flow(name=unique_name)
    def pipeline() -> tuple[bool, int]:
        with transaction(key=unique_name) as txn:
            return txn.is_committed(), touch()

    assert pipeline() == (False, 1)
    assert any("was not persisted: a rerun of transaction" in line for line in logs_of(latest_flow_run(pipeline)))
    assert pipeline() == (True, 2)  # its value cannot be given back: it ran again, without hooks
    assert commits == [1]


def test_the_task_runs_of_a_subflow_called_in_the_block_are_staged(unique_name):
    events: list[str] = []
    step = recording_task("step", events)

    @flow(name=f"{unique_name}-child")
    def child():
        step("in the subflow")

    @flow(name=unique_name)
    def parent():
        with transaction():
            step("in the parent")
            child()
            raise ValueError("after the subflow")

    with pytest.raises(ValueError):
        parent()
    assert events[-2:] == ["rollback in the subflow", "rollback in the parent"]
