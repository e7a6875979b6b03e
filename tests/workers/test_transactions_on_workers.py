"""Transactions around task runs that execute on real Celery workers: their hooks run in the flow's process."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.runs.models import FlowRun
from sdk import flow, task
from sdk.task_runners import CeleryTaskRunner
from sdk.transactions import transaction

# Tasks at the top level of an importable module: the workers load them by name.
hook_pids: list[int] = []


@task
def write(path: str, text: str) -> str:
    Path(path).write_text(text)
    return path


@write.on_rollback
def remove(txn) -> None:
    hook_pids.append(os.getpid())
    Path(txn.get("result")).unlink()


@task
def check(path: str) -> int:
    lines = Path(path).read_text().splitlines()
    if len(lines) < 2:
        raise ValueError("too short")
    return len(lines)


@flow(task_runner=CeleryTaskRunner())
def publish(path: str, text: str, key: str | None = None) -> int:
    with transaction(key=key):
        written = write.submit(path, text)
        return check.submit(written).result()


def test_a_run_on_a_worker_is_rolled_back_in_the_flow_s_process(start_worker, tmp_path):
    start_worker()
    target = tmp_path / "out.txt"
    with pytest.raises(ValueError, match="too short"):
        publish(str(target), "one line\n")
    assert not target.exists() and hook_pids == [os.getpid()]
    runs = FlowRun.objects.filter(flow__name="publish").latest("created").task_runs.all()
    assert {run.name: run.state_name for run in runs} == {"write-0": "RolledBack", "check-0": "Failed"}


def test_a_committed_transaction_s_runs_are_not_sent_to_workers_again(start_worker, tmp_path):
    start_worker()
    target, key = tmp_path / "out.txt", f"publish-{tmp_path.name}"
    assert publish(str(target), "one\ntwo\n", key=key) == 2
    target.unlink()
    assert publish(str(target), "one\ntwo\n", key=key) == 2  # recorded results: nothing ran, no file written
    assert not target.exists()
    runs = FlowRun.objects.filter(flow__name="publish").latest("created").task_runs.all()
    assert {run.state_name for run in runs} == {"Cached"}
