"""State details read back are tolerant of names a newer Runway wrote; client input stays strict."""
from __future__ import annotations

import pytest

from orchestrator.runs.models import TaskRunState
from orchestrator.runs.selectors import task_run_current_states, task_run_states
from orchestrator.schemas import SetStateStatus, State, StateDetails, StateType


def test_unknown_names_are_an_error_in_input_and_skipped_when_read_back():
    with pytest.raises(ValueError, match="unknown state detail"):
        StateDetails.from_dict({"cache_key": "k", "from_the_future": 1}, strict=True)
    assert StateDetails.from_dict({"cache_key": "k", "from_the_future": 1}) == StateDetails(cache_key="k")


def test_a_run_whose_stored_state_has_a_detail_this_version_does_not_know_still_moves_on(make_task_run):
    run = make_task_run(StateType.PENDING)
    TaskRunState.objects.filter(pk=run.state_id).update(details={"from_the_future": True})

    from orchestrator.runs.services import task_run_set_state

    answer = task_run_set_state(task_run_id=run.id, state=State(StateType.RUNNING))

    assert answer.status == SetStateStatus.ACCEPT
    assert [row.type for row in task_run_states(task_run_id=run.id)] == ["PENDING", "RUNNING"]
    TaskRunState.objects.filter(pk=answer.state.id).update(details={"from_the_future": True})
    assert task_run_current_states(task_run_ids=[run.id])[run.id].details == StateDetails()
