"""task_run_final_states_since: what a flow waiting on its runs on workers asks, ten times a second."""
from __future__ import annotations

from orchestrator.runs import selectors, services
from orchestrator.runs.models import TaskRun
from orchestrator.schemas import State, StateDetails, StateType

S = StateType


def _finish(run, state: State) -> State:
    return services.task_run_set_state(task_run_id=run.id, state=state, force=True).state


def test_only_the_flow_run_s_final_runs_since_the_time_asked_oldest_first(make_flow_run, make_task_run):
    flow_run = make_flow_run(S.PENDING, S.RUNNING)
    runs = [make_task_run(S.PENDING, S.RUNNING, flow_run=flow_run) for _ in range(4)]
    elsewhere = make_task_run(S.PENDING, S.RUNNING)  # another flow run's
    first = _finish(runs[2], State(S.COMPLETED, message="done", result={"storage_key": "k"},
                                   details=StateDetails(cache_key="c")))  # fmt: skip
    second = _finish(runs[0], State(S.FAILED, message="boom"))
    _finish(elsewhere, State(S.COMPLETED))
    # runs[1] stays Running and runs[3] goes Cancelled last

    found = selectors.task_run_final_states_since(flow_run_id=flow_run.id, since=None)

    assert [(run_id, state.id) for run_id, state in found] == [(runs[2].id, first.id), (runs[0].id, second.id)]
    completed = found[0][1]
    assert (completed.type, completed.name, completed.message) == (S.COMPLETED, "Completed", "done")
    assert (completed.result, completed.details.cache_key) == ({"storage_key": "k"}, "c")
    assert completed.timestamp == TaskRun.objects.get(id=runs[2].id).state_timestamp
    assert found[1][1].message == "boom" and found[1][1].result is None

    third = _finish(runs[3], State(S.CANCELLED))
    since = selectors.task_run_final_states_since(flow_run_id=flow_run.id, since=second.timestamp)
    assert [(run_id, state.id) for run_id, state in since] == [(runs[0].id, second.id), (runs[3].id, third.id)]
    assert selectors.task_run_final_states_since(flow_run_id=flow_run.id, since=third.timestamp)[-1][0] == runs[3].id
