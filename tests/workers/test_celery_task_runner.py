"""CeleryTaskRunner against real `celery worker` processes and a real Redis broker."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from orchestrator.runs.models import FlowRun, TaskRun
from tests.sdk.conftest import logs_of, state_names
from tests.workers import flows


def latest(flow_name: str) -> FlowRun:
    return FlowRun.objects.filter(flow__name=flow_name).latest("created")


def test_mapped_and_async_task_runs_execute_on_workers_and_their_results_come_back(start_worker):
    worker = start_worker(concurrency=2)
    assert flows.squares_then_total(6) == sum(i * i for i in range(6))
    run = latest("squares-then-total")
    assert state_names(run) == ["Pending", "Running", "Completed"]
    task_runs = list(run.task_runs.all())
    assert len(task_runs) == 7 and {t.state_name for t in task_runs} == {"Completed"}
    for task_run in task_runs:
        assert state_names(task_run) == ["Pending", "Running", "Completed"]
    worker_pids = {int(line.rsplit(" ", 1)[1]) for line in logs_of(run) if line.startswith("squaring")}
    assert worker_pids and os.getpid() not in worker_pids  # the work ran in the worker's processes
    assert "runway.run_task_run" in worker.output()


def test_a_task_run_name_made_from_an_upstream_result_names_the_run_a_worker_ran(start_worker):
    start_worker()
    assert flows.cubes_of_squares() == [64, 729]
    names = sorted(t.name for t in latest("cubes-of-squares").task_runs.all())
    assert names == ["cube-of-4", "cube-of-9", "square-0", "square-1"]


def test_a_failed_task_run_is_retried_on_a_worker_after_its_delay_without_holding_a_slot(start_worker, tmp_path):
    start_worker(concurrency=1)
    started = time.monotonic()
    assert flows.retried_on_a_worker(str(tmp_path / "marker")) == "second attempt"
    assert time.monotonic() - started >= 2  # the retry delay was honoured
    task_run = latest("retried-on-a-worker").task_runs.get()
    assert state_names(task_run) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert task_run.run_count == 2


def test_an_upstream_failure_leaves_the_downstream_run_not_ready_and_fails_a_flow_that_reads_it(start_worker):
    start_worker()
    assert flows.upstream_failure() == "NotReady"
    runs = {t.name: t for t in latest("upstream-failure").task_runs.all()}
    assert runs["always_fails-0"].state_name == "Failed"
    assert runs["after_failure-0"].state_name == "NotReady"
    state = flows.reads_a_failure(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="this task always fails"):
        state.result()


def test_values_that_are_not_json_cross_through_result_storage(start_worker):
    start_worker()
    assert flows.objects_between_tasks() == 3 * 3 + 4 * 4


def test_a_task_runs_on_the_queue_it_names(start_worker):
    start_worker(queues=flows.OTHER_QUEUE, concurrency=1)
    assert flows.task_with_queue() == "served"


def test_a_script_s_tasks_are_found_by_its_file_path(start_worker, tmp_path):
    start_worker()
    script = tmp_path / "etl_script.py"
    script.write_text(textwrap.dedent("""
        from sdk import flow, task
        from sdk.task_runners import CeleryTaskRunner

        @task
        def shout(word: str) -> str:
            return word.upper()

        @flow(task_runner=CeleryTaskRunner())
        def script_flow() -> list[str]:
            return [f.result() for f in shout.map(["a", "b"])]

        if __name__ == "__main__":
            print(script_flow())
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(flows.__file__).rsplit("/tests/", 1)[0]})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['A', 'B']"


def test_a_task_defined_inside_a_function_is_refused_at_submission():
    from sdk import flow, task
    from sdk.engine.remote import NotSendable
    from sdk.task_runners import CeleryTaskRunner

    @task
    def local_task() -> int:
        return 1

    @flow(task_runner=CeleryTaskRunner())
    def sends_a_local_task() -> int:
        return local_task.submit().result()

    with pytest.raises(NotSendable, match="defined inside a function"):
        sends_a_local_task()


def test_task_runs_record_their_worker_output_in_the_run_logs(start_worker):
    start_worker()
    flows.squares_then_total(2)
    run = latest("squares-then-total")
    square_run = TaskRun.objects.get(flow_run=run, name="square-1")
    deadline = time.monotonic() + 10  # the worker stores its lines in batches (every 0.05 s in tests)
    while True:
        messages = [log.message for log in square_run.logs.order_by("timestamp")]
        if "Finished in state Completed()" in messages or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert any(m.startswith("squaring 1 on pid") for m in messages)
    assert "Finished in state Completed()" in messages
    assert square_run.worker and square_run.pid != os.getpid()  # the worker that ran it is recorded


def test_a_flow_whose_queue_no_worker_serves_says_so_and_goes_on_once_one_starts(start_worker, capfd):
    import time
    import uuid

    from sdk.task_runners import CeleryTaskRunner
    from tests.workers.test_lost_workers import run_in_thread

    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    outcome = run_in_thread(flows.one_square.with_options(task_runner=CeleryTaskRunner(queue=queue)), 7)
    said, deadline = "", time.monotonic() + 30  # RUNWAY_RESEND_SECONDS is 3 in the tests
    while "Is a worker consuming that queue?" not in said and time.monotonic() < deadline:
        time.sleep(0.2)
        said += capfd.readouterr().err
    assert f"1 task run(s) sent to Celery queue {queue!r} have not started" in said
    assert f"`celery -A workers worker -Q {queue}`" in said

    start_worker(queues=queue)
    outcome["thread"].join(timeout=60)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"].result() == 49


def test_a_cancelled_flow_s_task_runs_on_workers_are_stopped_and_end_cancelled(start_worker, tmp_path):
    """The running task run's process is killed (its message revoked with terminate), the waiting
    ones never run, and every unfinished task run ends Cancelled with the flow run."""
    import threading

    from sdk.flow_runs import cancel_flow_run
    from tests.deployments.conftest import wait_until

    start_worker(concurrency=1)
    ledger = tmp_path / "ledger.txt"

    def cancel_once_running() -> None:
        first = wait_until(lambda: TaskRun.objects.filter(flow_run__flow__name="long-fan-out", name="write_after-0",
                                                          state_type="RUNNING", flow_run__state_type="RUNNING").first(), 60,
                           "the first task run starting on the worker")  # fmt: skip
        cancel_flow_run(first.flow_run_id)

    threading.Thread(target=cancel_once_running, daemon=True).start()
    state = flows.long_fan_out(str(ledger), return_state=True)
    assert state.is_cancelled()
    run = latest("long-fan-out")
    assert run.state_name == "Cancelled"
    assert set(run.task_runs.values_list("state_name", flat=True)) == {"Cancelled"}
    time.sleep(3)  # the revoked messages and the killed process get their chance to misbehave
    assert not ledger.exists()
    assert not TaskRun.objects.filter(flow_run=run, states__type="COMPLETED").exists()
    assert set(run.task_runs.values_list("state_name", flat=True)) == {"Cancelled"}


def test_runs_waiting_for_an_upstream_run_hold_up_no_other_run(start_worker, tmp_path):
    start_worker(concurrency=2)
    ledger = tmp_path / "order.txt"
    names = flows.waiting_runs_and_an_independent_one(str(ledger))
    assert names == ["first", *(f"after-{i}" for i in range(10)), "independent"]
    order = ledger.read_text().splitlines()
    # Sent at once, it ran on the second pool process while the first run was still sleeping.
    assert order.index("independent") < order.index("first"), order
    assert order.index("first") < min(order.index(f"after-{i}") for i in range(10)), order


def test_task_hooks_run_once_on_the_worker_that_ran_the_task_run(start_worker, tmp_path):
    start_worker(concurrency=2)
    ledger = tmp_path / "hooks.txt"
    flows.hooked_on_workers(str(ledger))
    # A hook runs on the worker after its run's final state is recorded, so the flow may see the last
    # run end before its hook has written: wait for both lines, then give a repeat time to show.
    from tests.deployments.conftest import wait_until

    wait_until(lambda: ledger.exists() and len(ledger.read_text().splitlines()) >= 2, 30, "both hooks writing")
    time.sleep(1)
    lines = sorted(ledger.read_text().splitlines())
    assert [line.rsplit(" ", 1)[0] for line in lines] == ["Completed hooked-0", "Failed hooked-1"]
    assert all(int(line.rsplit(" ", 1)[1]) != os.getpid() for line in lines)
