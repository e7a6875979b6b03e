"""Whatever goes wrong around the user's code, a run ends in a recorded state, never Running."""
from __future__ import annotations

import threading
import time

from orchestrator.runs.models import TaskRun
from sdk import flow, task
from tests.sdk.conftest import latest_flow_run


@task
def boom():
    raise ValueError("upstream failed")


@task
def after():
    return 1


def test_a_flow_returning_a_not_ready_future_fails_instead_of_staying_running(unique_name):
    @flow(name=unique_name)
    def pipeline():
        first = boom.submit()
        return [after.submit(wait_for=[first])]

    state = pipeline(return_state=True)
    assert state.is_failed()
    run = latest_flow_run(pipeline)
    assert run.state_type == "FAILED"
    assert not run.task_runs.filter(state_type="RUNNING").exists()


def test_a_result_that_cannot_be_persisted_fails_the_task_and_the_flow(unique_name):
    @task(persist_result=True)
    def unpicklable():
        return threading.Lock()

    @flow(name=unique_name)
    def pipeline():
        return unpicklable.submit().wait().type.value

    assert pipeline() == "FAILED"
    task_run = latest_flow_run(pipeline).task_runs.get()
    assert task_run.state_type == "FAILED" and "cannot pickle" in task_run.state.message


def test_a_flow_persisting_an_unpicklable_result_ends_failed(unique_name):
    @flow(name=unique_name, persist_result=True)
    def pipeline():
        return threading.Lock()

    assert pipeline(return_state=True).is_failed()
    assert latest_flow_run(pipeline).state_type == "FAILED"


def test_a_flow_timeout_inside_a_task_with_its_own_timeout_leaves_no_task_running(unique_name):
    @task(timeout_seconds=5)
    def slow():
        time.sleep(3)

    @flow(name=unique_name, timeout_seconds=0.5)
    def pipeline():
        return slow()

    state = pipeline(return_state=True)
    assert state.name == "TimedOut"
    run = latest_flow_run(pipeline)
    assert run.state_name == "TimedOut"
    assert run.task_runs.get().state_type == "CRASHED"


def test_a_flow_timeout_during_many_quick_tasks_leaves_none_running(unique_name):
    @task
    def quick(i: int) -> int:
        return i

    @flow(name=unique_name, timeout_seconds=0.5)
    def pipeline():
        i = 0
        while True:
            quick(i)
            i += 1

    for _ in range(3):
        assert pipeline(return_state=True).name == "TimedOut"
    runs = TaskRun.objects.filter(flow_run__flow__name=unique_name)
    assert runs.count() > 10
    assert not runs.exclude(state_type__in=["COMPLETED", "CRASHED"]).exists()


def test_calls_queued_together_on_the_orchestrator_thread_are_answered_alone_after_one_commit():
    """Calls from other threads that queue up are served in one transaction; a failing one fails alone."""
    import uuid

    from orchestrator.exceptions import ObjectNotFound
    from orchestrator.runs import services
    from orchestrator.schemas import SetStateStatus, State, StateType
    from sdk.client import get_client

    client = get_client()
    flow_id = client.create_flow("t-grouped-calls")
    flow_run_id, _ = client.create_flow_run(flow_id=flow_id, name="grouped", state=State(StateType.RUNNING))
    created = services.task_runs_create(runs=[
        {"flow_run_id": flow_run_id, "task_key": "grouped", "dynamic_key": str(i), "name": f"g-{i}",
         "state": State(StateType.PENDING)} for i in range(4)
    ])  # fmt: skip
    targets = [run_id for run_id, _ in created] + [uuid.uuid4()]  # the last one does not exist
    answers: dict = {}

    def propose(run_id):
        try:
            answers[run_id] = client.set_task_run_state(run_id, State(StateType.RUNNING))
        except Exception as exc:
            answers[run_id] = exc

    with client._lock:  # hold the orchestrator thread so that the calls queue up
        threads = [threading.Thread(target=propose, args=(run_id,)) for run_id in targets]
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # the calls queue up; the orchestrator thread takes them as one group, or two
    for thread in threads:
        thread.join(5)

    assert isinstance(answers[targets[-1]], ObjectNotFound)
    for run_id in targets[:-1]:
        assert answers[run_id].status == SetStateStatus.ACCEPT
        assert TaskRun.objects.get(id=run_id).state_type == "RUNNING"
