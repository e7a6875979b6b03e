"""Turning what user code did (returned a value, raised) into the state to propose."""
from __future__ import annotations

from typing import Any

from sdk import results
from sdk.engine.inputs import visit
from sdk.exceptions import FlowRunTimeoutError, TaskRunTimeoutError
from sdk.filesystems import LocalFileSystem
from sdk.states import Cancelled, Completed, Failed, State


def completed_state(value: Any, *, persist: bool | None, storage: LocalFileSystem | None) -> State:
    """Completed with `value` in memory and, unless persist is False, in storage."""
    state = Completed(data=value)
    if persist is False:
        state.result_ref = results.UNPERSISTED
        return state
    try:
        state.result_ref = results.persist_value(value, storage)
    except Exception:
        if persist:  # asked for explicitly: not keeping it is a failure
            raise
        state.result_ref = results.UNPERSISTED  # default persistence is best effort
    return state


def exception_state(exc: BaseException, *, kind: str, storage: LocalFileSystem | None) -> State:
    """Failed (TimedOut for our timeouts) with the exception recorded for `State.result()` to raise."""
    if isinstance(exc, (TaskRunTimeoutError, FlowRunTimeoutError)):
        state = Failed(message=str(exc), name="TimedOut", data=exc)
    else:
        state = Failed(message=f"{kind} run encountered an exception: {type(exc).__name__}: {exc}", data=exc)
    state.result_ref = results.persist_exception(exc, storage)
    return state


def aggregate(states: list[State], data: Any = None) -> State:
    """One state for many: Failed if any failed or crashed, Cancelled if any was, else Completed."""
    failed = [s for s in states if s.is_failed() or s.is_crashed()]
    cancelled = [s for s in states if s.is_cancelled()]
    unfinished = [s for s in states if not s.is_final()]
    total = len(states)
    if failed:
        return Failed(f"{len(failed)}/{total} states failed.", data=failed[0].result(raise_on_failure=False))
    if cancelled:
        return Cancelled(f"{len(cancelled)}/{total} states cancelled.", data=cancelled[0].result(raise_on_failure=False))
    if unfinished:
        return Failed(f"{len(unfinished)}/{total} states are not final.")
    return Completed("All states completed.", data=data)


def flow_return_state(value: Any, unobserved: list[State], *, persist: bool | None, storage: LocalFileSystem | None) -> State:
    """A flow's final state from its return value, as Prefect decides it.

    A returned State is used as is; returned futures or states decide by their
    own states; None decides by the submitted task runs the flow never looked at,
    so a failure nobody handled is not lost. Anything else completes the flow.
    """
    if isinstance(value, State):
        return value
    from sdk.futures import RunwayFuture

    found: list[State] = []

    def to_result(leaf: Any) -> Any:
        if isinstance(leaf, RunwayFuture):
            leaf = leaf.final_state()
        if isinstance(leaf, State):
            found.append(leaf)
            return leaf.result(raise_on_failure=False) if leaf.is_final() else leaf  # NotReady has no result
        return leaf

    data = visit(value, to_result)
    if found:
        state = aggregate(found, data)
    elif value is None and unobserved:
        state = aggregate(unobserved)
    else:
        return completed_state(data, persist=persist, storage=storage)
    if state.is_completed():
        done = completed_state(data, persist=persist, storage=storage)
        done.message = state.message
        return done
    if state.has_data:
        state.result_ref = results.persist_exception(state.data, storage)
    return state
