"""Acting on flow runs from code, under Prefect 2's names (`prefect.flow_runs`).

    from sdk.flow_runs import cancel_flow_run, pause_flow_run, resume_flow_run, suspend_flow_run

Each call goes through the same client as the engine (in process, or over HTTP
when RUNWAY_API_URL is set), so the orchestrator's rules decide.
"""
from __future__ import annotations

import time
from typing import Any, TypeVar
from uuid import UUID

from orchestrator.schemas import StateType
from sdk.context import FlowRunContext, TaskRunContext
from sdk.exceptions import FlowPauseTimeout, FlowRunCancelledError, Pause
from sdk.states import State

T = TypeVar("T")


def cancel_flow_run(flow_run_id: UUID | str) -> State:
    """Cancel a flow run: one that has not started is Cancelled at once; a running one goes
    Cancelling, and the process running it stops it (within RUNWAY_CANCEL_CHECK_SECONDS) and
    ends it Cancelled, with its unfinished task runs. Returns the state the run is in now."""
    from sdk.client import get_client

    answer = get_client().cancel_flow_run(UUID(str(flow_run_id)))
    return State.from_schema(answer.state)


def resume_flow_run(flow_run_id: UUID | str, run_input: Any = None) -> State:
    """Resume a Paused flow run, with the input it waits for (a pydantic model instance, or JSON
    data), checked against the schema the pause declared. Returns the run's state now."""
    from sdk.client import get_client

    if hasattr(run_input, "model_dump"):
        run_input = run_input.model_dump(mode="json")
    answer = get_client().resume_flow_run(UUID(str(flow_run_id)), run_input)
    return State.from_schema(answer.state)


def pause_flow_run(wait_for_input: type[T] | None = None, timeout: float = 3600, poll_interval: float = 10,
                   key: str | None = None) -> T | None:  # fmt: skip
    """Pause the flow run this code runs in until someone resumes it (UI, API, CLI,
    `resume_flow_run`); its process waits, looking every `poll_interval` seconds.

    With `wait_for_input` (a pydantic model or any type pydantic validates), resuming must give
    input matching it, and this returns it, validated; else it returns None. If nobody resumes
    the run within `timeout` seconds, FlowPauseTimeout is raised here and the run fails.
    While paused, the run's task runs cannot start.
    """
    ctx, key = _pausing_context(key)
    schema, adapter = _input_type(wait_for_input)
    state, resumed, value = ctx.client.pause_flow_run(
        ctx.flow_run.id, key=key, timeout_seconds=timeout, reschedule=False, input_schema=schema,
        from_state_id=ctx.engine.following_id(),
    )  # fmt: skip
    if not resumed:
        _logger().info("Pausing flow run; it goes on when it is resumed")
        ctx.engine.adopt(State.from_schema(state))
        value = _wait_until_resumed(ctx, key, timeout, poll_interval)
    return adapter.validate_python(value) if adapter is not None else None


def suspend_flow_run(wait_for_input: type[T] | None = None, timeout: float = 3600, key: str | None = None) -> T | None:
    """Suspend the deployment run this code runs in: the run goes Paused ("Suspended") and its
    process stops running it, freeing its agent. Resumed, it is scheduled again and runs from the
    start: task runs that completed before are not run again (their results are reused), and this
    call returns the input it was resumed with. A run not resumed within `timeout` seconds fails.
    """
    ctx, key = _pausing_context(key)
    if not ctx.client.read_flow_run(ctx.flow_run.id).get("deployment_id"):
        raise RuntimeError("suspend_flow_run needs a deployment's run, which an agent can start again when it "
                           "is resumed; in a flow called directly, use pause_flow_run")  # fmt: skip
    schema, adapter = _input_type(wait_for_input)
    state, resumed, value = ctx.client.pause_flow_run(
        ctx.flow_run.id, key=key, timeout_seconds=timeout, reschedule=True, input_schema=schema,
        from_state_id=ctx.engine.following_id(),
    )  # fmt: skip
    if not resumed:
        ctx.engine.adopt(State.from_schema(state))
        _logger().info("Suspending flow run; it starts again when it is resumed")
        raise Pause(f"flow run suspended at {key!r}")
    return adapter.validate_python(value) if adapter is not None else None


def _pausing_context(key: str | None) -> tuple[FlowRunContext, str]:
    ctx = FlowRunContext.get()
    if ctx is None or ctx.engine is None or TaskRunContext.get() is not None:
        raise RuntimeError("pausing needs a flow run: call it from a flow's code (not from a task)")
    return ctx, key or f"pause-{ctx.next_dynamic_key('runway.pause')}"


def _input_type(wait_for_input: Any) -> tuple[dict[str, Any] | None, Any]:
    """The JSON schema the orchestrator checks the input against, and the adapter that reads it here."""
    if wait_for_input is None:
        return None, None
    from pydantic import TypeAdapter

    adapter = TypeAdapter(wait_for_input)
    return adapter.json_schema(), adapter


def _wait_until_resumed(ctx: FlowRunContext, key: str, timeout: float, poll_interval: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = ctx.client.read_flow_run(ctx.flow_run.id)
        state = found["state"]
        if state.type == StateType.RUNNING:
            ctx.engine.adopt(State.from_schema(state))
            _logger().info(f"Resumed ({state.message or 'no message'})")
            return ((found.get("run_input") or {}).get(key) or {}).get("value")
        if state.type != StateType.PAUSED:  # cancelled, or failed by the orchestrator's sweep
            ctx.engine.adopt(State.from_schema(state))
            if state.type in (StateType.CANCELLING, StateType.CANCELLED):
                raise FlowRunCancelledError(state.message or "the flow run was cancelled while paused")
            raise FlowPauseTimeout(f"the flow run was paused and became {state.name}: {state.message}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise FlowPauseTimeout(f"Flow run was paused and not resumed within {timeout:g} seconds")
        time.sleep(min(poll_interval, left))


def _logger() -> Any:
    from sdk.logging import get_run_logger

    return get_run_logger()
