"""Proposing a state and acting on the answer: wait and propose again, adopt, or abort."""
from __future__ import annotations

from collections.abc import Generator
from typing import Any
from uuid import UUID

from orchestrator.schemas import OrchestrationResult, SetStateStatus, StateType
from sdk.client.base import OrchestrationClient
from sdk.context import RunInfo
from sdk.engine.driver import Sleep
from sdk.exceptions import Abort
from sdk.states import _NO_DATA, State


def propose(
    client: OrchestrationClient, state: State, *, task_run_id: UUID | None = None,
    flow_run_id: UUID | None = None, force: bool = False, answer: OrchestrationResult | None = None,
    run: RunInfo | None = None,
) -> Generator[Sleep, Any, State]:
    """Propose `state` until answered; returns the state the run is in now.

    An accepted state keeps the value this process holds in memory, so
    `result()` needs no storage round trip.
    `answer`, when given, is the orchestrator's answer to a proposal already sent
    (with the run's creation).
    `run`, when given, takes the run_count of an answer that started the run: the
    orchestrator counts the attempts, wherever the earlier ones ran (a retry on
    another worker is attempt 2 there too).
    """  # fmt: skip
    while True:
        if answer is None:
            schema = state.to_schema()
            if task_run_id is not None:
                answer = client.set_task_run_state(task_run_id, schema, force=force)
            else:
                answer = client.set_flow_run_state(flow_run_id, schema, force=force)
        if answer.status == SetStateStatus.WAIT:
            yield Sleep(answer.delay_seconds or 0)
            answer = None
            continue
        if answer.status == SetStateStatus.ABORT:
            raise Abort(answer.reason or "the orchestrator aborted this run")
        accepted = answer.status == SetStateStatus.ACCEPT and answer.state.type == state.type
        if run is not None and accepted and state.type == StateType.RUNNING:
            run.run_count = answer.run_count if answer.run_count is not None else run.run_count + 1
        return State.from_schema(answer.state, data=state.data if accepted else _NO_DATA)



def propose_now(client: OrchestrationClient, state: State, **ids: Any) -> State:
    """Propose without being able to sleep (a crash in progress): a WAIT is not waited for."""
    steps = propose(client, state, **ids)
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value
