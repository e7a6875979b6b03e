"""Every (from, to) pair of state types, for flow runs and task runs, under the core policies.

The expected answers are written out by hand below, not derived from the legal
tables in orchestrator.rules.core, so a change to either shows up here. A run
is walked (with force=True) into the `from` state along the path it would
really take, then `to` is proposed without force. Default runs: no retries, no
process id; task runs belong to a Running flow run.
"""
from __future__ import annotations

import uuid

import pytest

from orchestrator.exceptions import InvalidInput
from orchestrator.runs import services
from orchestrator.runs.models import FlowRun, TaskRun
from orchestrator.schemas import SetStateStatus, State, StateType
from tests.orchestrator.rules.helpers import fresh, propose, rows

S = StateType
PATHS = {
    S.SCHEDULED: (S.SCHEDULED,),
    S.PENDING: (S.PENDING,),
    S.RUNNING: (S.PENDING, S.RUNNING),
    S.PAUSED: (S.PENDING, S.RUNNING, S.PAUSED),
    S.CANCELLING: (S.PENDING, S.RUNNING, S.CANCELLING),
    S.COMPLETED: (S.PENDING, S.RUNNING, S.COMPLETED),
    S.FAILED: (S.PENDING, S.RUNNING, S.FAILED),
    S.CRASHED: (S.PENDING, S.RUNNING, S.CRASHED),
    S.CANCELLED: (S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED),
}

# Answers: "ok" accepted as proposed; "no" rejected, run unchanged; "abort" aborted, run
# unchanged; "Rerunning" accepted under that name; "->Cancelled" rejected to Cancelled (written).
COLUMNS = (S.SCHEDULED, S.PENDING, S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED, S.CRASHED, S.PAUSED, S.CANCELLING)
FLOW_ANSWERS = {
    #             SCHEDULED PENDING  RUNNING      COMPLETED FAILED  CANCELLED CRASHED PAUSED  CANCELLING
    None:         ("ok",    "ok",    "ok",        "no",     "no",   "no",     "no",   "no",   "no"),
    S.SCHEDULED:  ("ok",    "ok",    "ok",        "no",     "ok",   "ok",     "ok",   "no",   "->Cancelled"),
    S.PENDING:    ("ok",    "abort", "ok",        "no",     "ok",   "ok",     "ok",   "no",   "ok"),
    S.RUNNING:    ("ok",    "abort", "no",        "ok",     "ok",   "ok",     "ok",   "ok",   "ok"),
    S.PAUSED:     ("ok",    "no",    "ok",        "ok",     "ok",   "ok",     "ok",   "no",   "->Cancelled"),
    S.CANCELLING: ("no",    "abort", "no",        "no",     "no",   "ok",     "no",   "no",   "no"),
    S.COMPLETED:  ("no",    "no",    "no",        "no",     "no",   "no",     "no",   "no",   "no"),
    S.FAILED:     ("no",    "no",    "no",        "no",     "no",   "no",     "no",   "no",   "no"),
    S.CRASHED:    ("no",    "no",    "no",        "no",     "no",   "no",     "no",   "no",   "no"),
    S.CANCELLED:  ("no",    "abort", "no",        "no",     "no",   "no",     "no",   "no",   "no"),
}  # fmt: skip
TASK_ANSWERS = {
    #             SCHEDULED PENDING  RUNNING      COMPLETED FAILED  CANCELLED CRASHED PAUSED  CANCELLING
    None:         ("ok",    "ok",    "ok",        "no",     "no",   "no",     "no",   "no",   "no"),
    S.SCHEDULED:  ("ok",    "ok",    "ok",        "no",     "ok",   "ok",     "ok",   "no",   "ok"),
    S.PENDING:    ("ok",    "abort", "ok",        "no",     "ok",   "ok",     "ok",   "no",   "ok"),
    S.RUNNING:    ("ok",    "abort", "no",        "ok",     "ok",   "ok",     "ok",   "ok",   "ok"),
    S.PAUSED:     ("ok",    "no",    "ok",        "ok",     "ok",   "ok",     "ok",   "no",   "ok"),
    S.CANCELLING: ("no",    "abort", "no",        "no",     "no",   "ok",     "no",   "no",   "no"),
    S.COMPLETED:  ("no",    "no",    "no",        "no",     "no",   "no",     "no",   "no",   "no"),
    S.FAILED:     ("no",    "ok",    "Rerunning", "no",     "no",   "no",     "no",   "no",   "no"),
    S.CRASHED:    ("no",    "ok",    "Rerunning", "no",     "no",   "no",     "no",   "no",   "no"),
    S.CANCELLED:  ("no",    "ok",    "Rerunning", "no",     "no",   "no",     "no",   "no",   "no"),
}  # fmt: skip
ANSWERS = {"flow": FLOW_ANSWERS, "task": TASK_ANSWERS}
PAIRS = [(start, end) for start in FLOW_ANSWERS for end in COLUMNS]


def _label(value) -> str:
    return value.value.lower() if value else "none"


@pytest.mark.parametrize(("start", "end"), PAIRS, ids=[f"{_label(a)}-to-{_label(b)}" for a, b in PAIRS])
def test_a_proposal_gets_the_answer_in_the_table(kind, make_run, new_run, start, end):
    expected = ANSWERS[kind][start][COLUMNS.index(end)]
    if start is None:
        _check_creation(kind, new_run, end, expected)
    else:
        _check_proposal(make_run(*PATHS[start]), end, expected)


def _check_proposal(run: FlowRun | TaskRun, end: StateType, expected: str) -> None:
    before_state, before_rows = run.state_id, rows(run)

    answer = propose(run, end)

    run = fresh(run)
    if expected in ("no", "abort"):
        status = SetStateStatus.ABORT if expected == "abort" else SetStateStatus.REJECT
        assert answer.status == status
        assert answer.reason
        assert answer.state.id == before_state == run.state_id
        assert rows(run) == before_rows
        return
    if expected == "->Cancelled":
        assert (answer.status, answer.state.type) == (SetStateStatus.REJECT, S.CANCELLED)
    else:
        name = State(end).name if expected == "ok" else expected
        assert (answer.status, answer.state.type, answer.state.name) == (SetStateStatus.ACCEPT, end, name)
    assert answer.state.id == run.state_id != before_state
    assert (run.state_type, run.state_name) == (answer.state.type, answer.state.name)
    assert rows(run) == before_rows + 1


def _check_creation(kind: str, new_run, end: StateType, expected: str) -> None:
    model = FlowRun if kind == "flow" else TaskRun
    before = model.objects.count()
    if expected == "no":
        with pytest.raises(InvalidInput, match=f"cannot start as {State(end).name}"):
            new_run(State(end))
        assert model.objects.count() == before
        return
    run, answer = new_run(State(end))
    assert (answer.status, answer.state.type, answer.state.name) == (SetStateStatus.ACCEPT, end, State(end).name)
    assert fresh(run).state_id == answer.state.id
    assert rows(run) == 1


FROM_A_STATE = [(start, end) for start, end in PAIRS if start is not None]


@pytest.mark.parametrize(("start", "end"), FROM_A_STATE, ids=[f"{_label(a)}-to-{_label(b)}" for a, b in FROM_A_STATE])
def test_a_forced_transition_is_always_written(make_run, start, end):
    run = make_run(*PATHS[start])
    before_rows = rows(run)

    answer = propose(run, end, force=True)

    assert (answer.status, answer.state.type) == (SetStateStatus.ACCEPT, end)
    assert fresh(run).state_id == answer.state.id
    assert rows(run) == before_rows + 1


def test_every_pair_of_state_types_is_in_the_expected_answers():
    assert set(COLUMNS) == set(StateType)
    for answers in ANSWERS.values():
        assert set(answers) == {None, *StateType}
        assert all(len(row) == len(COLUMNS) for row in answers.values())


def test_a_refused_new_task_run_leaves_no_trace_in_its_flow_run(make_flow_run):
    flow_run = make_flow_run(S.PENDING, S.RUNNING)

    with pytest.raises(InvalidInput):
        services.task_run_create(
            flow_run_id=flow_run.id, task_key="tests.task", dynamic_key=uuid.uuid4().hex[:6],
            name="task-0", state=State(S.COMPLETED),
        )  # fmt: skip

    assert not TaskRun.objects.filter(flow_run_id=flow_run.id).exists()
