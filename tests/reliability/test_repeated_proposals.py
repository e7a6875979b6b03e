"""Check 12: repeated and conflicting state proposals, one at a time and many at once.

- The same proposal (one transition key) sent twice, and 20 times at once, through the
  HTTP API of the live server and through the services from threads (each thread on its
  own database connection): one state row is written and every answer is the same
  (status and state; the reason of a repeat says it is one).
- A repeat arriving after the run moved on (its first request was still being served
  when the client retried and went on) is not applied again.
- Conflicting proposals at once (20 x Running with 20 keys from Pending; Completed
  against Failed from Running): exactly one is written; the others are refused with a
  reason (HTTP 409, REJECT), never a 5xx, a deadlock or a "database is locked".
"""
from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from orchestrator.runs import services
from orchestrator.runs.models import FlowRunState, TaskRunState
from orchestrator.schemas import (
    OrchestrationResult,
    SetStateStatus,
    State,
    StateDetails,
    StateType,
)
from tests.reliability.at_once import ServerLog, at_once, http_at_once

S = StateType
ACCEPT, REJECT = SetStateStatus.ACCEPT, SetStateStatus.REJECT
THREADS = 20


# --- runs and proposals -----------------------------------------------------------------------------
@pytest.fixture(params=["flow", "task"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_run(kind):
    """make_run(S.PENDING, *types, retries=0) -> run id: a flow run, or a task run of a Running flow
    run, created Pending and walked through `types` (forced)."""
    flow = services.flow_get_or_create(name=f"repeats-{uuid.uuid4().hex[:8]}")

    def make(*types: StateType, retries: int = 0) -> uuid.UUID:
        policy = {"retries": retries, "retry_delay": 0}
        flow_run, _ = services.flow_run_create(flow_id=flow.id, name="repeats", state=State(S.PENDING),
                                               empirical_policy=policy if kind == "flow" else {})  # fmt: skip
        if kind == "flow":
            _walk(kind, flow_run.id, types[1:])
            return flow_run.id
        services.flow_run_set_state(flow_run_id=flow_run.id, state=State(S.RUNNING))
        task_run, _ = services.task_run_create(flow_run_id=flow_run.id, task_key="repeats.task", dynamic_key="0",
                                               name="task", state=State(types[0]), empirical_policy=policy)  # fmt: skip
        _walk(kind, task_run.id, types[1:])
        return task_run.id

    return make


def _walk(kind: str, run_id: uuid.UUID, types: tuple[StateType, ...]) -> None:
    for state_type in types:
        _set_state(kind, run_id, State(state_type), force=True)


def _set_state(kind: str, run_id: uuid.UUID, state: State, force: bool = False) -> OrchestrationResult:
    if kind == "flow":
        return services.flow_run_set_state(flow_run_id=run_id, state=state, force=force)
    return services.task_run_set_state(task_run_id=run_id, state=state, force=force)


def _keyed(state_type: StateType, key: str | None = None, **details: Any) -> State:
    return State(state_type, details=StateDetails(transition_key=key or uuid.uuid4().hex, **details))


def _history(kind: str, run_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """The run's states, oldest first: (name, transition key)."""
    model, column = (FlowRunState, "flow_run_id") if kind == "flow" else (TaskRunState, "task_run_id")
    rows = model.objects.filter(**{column: run_id}).order_by("timestamp").values_list("name", "details")
    return [(name, (details or {}).get("transition_key")) for name, details in rows]


def _answers(results: list[Any]) -> list[OrchestrationResult]:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} proposals raised, e.g. {errors[0]!r}"
    return results


# --- the same proposal, twice -----------------------------------------------------------------------
def test_a_proposal_sent_twice_is_written_once_and_answered_the_same(kind, make_run):
    run_id = make_run(S.PENDING)
    proposal = _keyed(S.RUNNING)

    first, again = _set_state(kind, run_id, proposal), _set_state(kind, run_id, proposal)

    assert (first.status, again.status) == (ACCEPT, ACCEPT)
    assert again.state.to_dict() == first.state.to_dict()
    assert _history(kind, run_id) == [("Pending", None), ("Running", proposal.details.transition_key)]


def test_a_repeat_of_a_replaced_proposal_gets_the_same_replacement(kind, make_run):
    run_id = make_run(S.PENDING, S.RUNNING, retries=1)
    proposal = _keyed(S.FAILED)

    first, again = _set_state(kind, run_id, proposal), _set_state(kind, run_id, proposal)

    assert (first.status, first.state.name) == (REJECT, "AwaitingRetry")
    assert (again.status, again.state.to_dict()) == (REJECT, first.state.to_dict())
    assert [name for name, _ in _history(kind, run_id)] == ["Pending", "Running", "AwaitingRetry"]


def test_a_repeat_arriving_after_the_run_moved_on_is_not_applied_again(kind, make_run):
    """Running (k1) was applied, then the attempt failed and was scheduled again: a late copy of
    k1 (the first request, still being served when the client retried) must not start the run a
    second time. Before the fix, only the current state's key was compared, and k1 was applied
    again as Retrying."""
    run_id = make_run(S.PENDING, retries=1)
    running = _keyed(S.RUNNING)
    assert _set_state(kind, run_id, running).status == ACCEPT
    assert _set_state(kind, run_id, _keyed(S.FAILED)).state.name == "AwaitingRetry"

    late = _set_state(kind, run_id, running)

    assert (late.status, late.state.name) == (REJECT, "AwaitingRetry")
    assert "already applied" in late.reason
    assert [name for name, _ in _history(kind, run_id)] == ["Pending", "Running", "AwaitingRetry"]


# --- the same proposal, 20 times at once ----------------------------------------------------------
def test_the_same_proposal_20_times_at_once_in_process_writes_one_state(kind, make_run):
    run_id = make_run(S.PENDING)
    proposal = _keyed(S.RUNNING)

    answers = _answers(at_once([lambda: _set_state(kind, run_id, proposal)] * THREADS))

    assert {(a.status, a.state.id) for a in answers} == {(ACCEPT, answers[0].state.id)}
    assert len({repr(a.state.to_dict()) for a in answers}) == 1
    assert _history(kind, run_id) == [("Pending", None), ("Running", proposal.details.transition_key)]


def test_the_same_proposal_20_times_at_once_over_http_writes_one_state(kind, make_run, live_server, make_token):
    run_id = make_run(S.PENDING)
    body = {"state": _keyed(S.RUNNING).to_dict()}
    log = ServerLog(live_server)

    replies = http_at_once(live_server, make_token(), [(f"/api/{kind}_runs/{run_id}/set_state/", body)] * THREADS)

    assert [code for code, _ in replies] == [200] * THREADS, Counter(code for code, _ in replies)
    assert {(r["status"], repr(r["state"])) for _, r in replies} == {("ACCEPT", repr(replies[0][1]["state"]))}
    assert _history(kind, run_id) == [("Pending", None), ("Running", body["state"]["details"]["transition_key"])]
    log.assert_clean()


# --- conflicting proposals at once ----------------------------------------------------------------
def test_20_different_running_proposals_at_once_in_process_start_the_run_once(kind, make_run):
    run_id = make_run(S.PENDING)

    answers = _answers(at_once([lambda: _set_state(kind, run_id, _keyed(S.RUNNING)) for _ in range(THREADS)]))

    _assert_one_winner(kind, run_id, [a.to_dict() for a in answers], ["Pending", "Running"])


def test_20_different_running_proposals_at_once_over_http_start_the_run_once(kind, make_run, live_server, make_token):
    run_id = make_run(S.PENDING)
    path = f"/api/{kind}_runs/{run_id}/set_state/"
    log = ServerLog(live_server)

    replies = http_at_once(live_server, make_token(), [(path, {"state": _keyed(S.RUNNING).to_dict()}) for _ in range(THREADS)])

    _assert_one_winner(kind, run_id, [body for _, body in replies], ["Pending", "Running"], [code for code, _ in replies])
    log.assert_clean()


def test_completed_against_failed_at_once_in_process_ends_the_run_once(kind, make_run):
    run_id = make_run(S.PENDING, S.RUNNING)
    ends = [S.COMPLETED, S.FAILED] * (THREADS // 2)

    answers = _answers(at_once([lambda end=end: _set_state(kind, run_id, _keyed(end)) for end in ends]))

    bodies = [a.to_dict() for a in answers]
    winner = _assert_one_winner(kind, run_id, bodies, None)
    assert [name for name, _ in _history(kind, run_id)] == ["Pending", "Running", winner["state"]["name"]]


def test_completed_against_failed_at_once_over_http_ends_the_run_once(kind, make_run, live_server, make_token):
    run_id = make_run(S.PENDING, S.RUNNING)
    path = f"/api/{kind}_runs/{run_id}/set_state/"
    ends = [S.COMPLETED, S.FAILED] * (THREADS // 2)
    log = ServerLog(live_server)

    replies = http_at_once(live_server, make_token(), [(path, {"state": _keyed(end).to_dict()}) for end in ends])

    winner = _assert_one_winner(kind, run_id, [body for _, body in replies], None, [code for code, _ in replies])
    assert [name for name, _ in _history(kind, run_id)] == ["Pending", "Running", winner["state"]["name"]]
    log.assert_clean()


def _assert_one_winner(kind: str, run_id: uuid.UUID, bodies: list[dict], names: list[str] | None,
                       codes: list[int] | None = None) -> dict:  # fmt: skip
    """Exactly one answer ACCEPT, the others REJECT naming the winner's state with a reason (over
    HTTP: 200 for the winner, 409 for the others); one state written."""
    statuses = Counter(body["status"] for body in bodies)
    assert statuses == {"ACCEPT": 1, "REJECT": len(bodies) - 1}, statuses
    winner = next(body for body in bodies if body["status"] == "ACCEPT")
    for body in bodies:
        if body is not winner:
            assert body["state"]["id"] == winner["state"]["id"] and body["reason"], body
            assert "cannot go from" in body["reason"], body["reason"]
    if codes is not None:
        assert sorted(codes) == [200] + [409] * (len(bodies) - 1), Counter(codes)
    history = [name for name, _ in _history(kind, run_id)]
    if names is not None:
        assert history == names
    return winner
