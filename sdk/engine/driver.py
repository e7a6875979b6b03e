"""Carrying out an engine's steps synchronously or on an event loop.

An engine yields `Call` (run the user's function in the run's context, under
its timeout) and `Sleep`; the driver sends back an `Outcome`. A BaseException
from the user's code (KeyboardInterrupt, SIGTERM) is thrown into the steps so
the engine records Crashed before it propagates.
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from sdk import context as run_context
from sdk.engine import prints
from sdk.engine.cancellation import RunCancelled, scope_of
from sdk.engine.timeouts import exposed, sync_timeout
from sdk.exceptions import FlowRunCancelledError, Pause
from sdk.futures import _sync_body


@dataclass
class Sleep:
    seconds: float


@dataclass
class Call:
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    context: run_context.RunContext | None = None
    timeout: float | None = None
    timeout_error: Callable[[], TimeoutError] = TimeoutError


def user_call(fn: Callable[..., Any], parameters: dict[str, Any], *, context: run_context.RunContext,
              timeout: float | None, error: type[TimeoutError], kind: str) -> Call:  # fmt: skip
    """The Call of a flow's or task's function with its parameters, under its timeout."""
    from sdk.engine.parameters import call_arguments

    args, kwargs = call_arguments(fn, parameters)
    message = f"{kind} run exceeded timeout of {timeout} seconds"
    return Call(fn, args, kwargs, context=context, timeout=timeout, timeout_error=lambda: error(message))


@dataclass
class Deferred:
    """The steps stopped at a Sleep longer than allowed: resume them (from the orchestrator's state) after `seconds`."""

    seconds: float


@dataclass
class Outcome:
    value: Any = None
    error: Exception | Pause | None = None  # Pause: the flow suspended its run


Steps = Generator[Call | Sleep, Outcome | None, Any]


def run_sync(steps: Steps, longest_sleep: float | None = None) -> Any:
    """Drive `steps` in this thread; async user functions get their own event loop.

    With `longest_sleep`, a Sleep longer than that closes the steps and returns
    Deferred: a Celery worker does not hold its slot through a retry delay (the
    run waits in the orchestrator as AwaitingRetry, and the task is sent again).
    """
    reply: Any = None
    while True:
        try:
            instruction = steps.send(reply)
        except StopIteration as stop:
            return stop.value
        if isinstance(instruction, Sleep):
            if longest_sleep is not None and instruction.seconds > longest_sleep:
                steps.close()
                return Deferred(instruction.seconds)
            time.sleep(max(instruction.seconds, 0))
            reply = None
            continue
        try:
            reply = _call_sync(instruction)
        except BaseException as exc:  # crash: let the engine record it, then re-raise
            steps.throw(exc)
            raise


async def run_async(steps: Steps) -> Any:
    """Drive `steps` from a coroutine; the engine's blocking orchestration runs in a worker thread."""
    reply: Any = None
    while True:
        instruction = await asyncio.to_thread(_advance, steps, reply)
        if isinstance(instruction, _Done):
            return instruction.value
        if isinstance(instruction, Sleep):
            await asyncio.sleep(max(instruction.seconds, 0))
            reply = None
            continue
        try:
            reply = await _call_async(instruction)
        except BaseException as exc:
            await asyncio.to_thread(_throw, steps, exc)
            raise


@dataclass
class _Done:
    value: Any


def _advance(steps: Steps, reply: Any) -> Any:
    """steps.send, with the generator's return turned into a value (StopIteration cannot cross a future)."""
    try:
        return steps.send(reply)
    except StopIteration as stop:
        return _Done(stop.value)


def _throw(steps: Steps, exc: BaseException) -> None:
    try:
        steps.throw(exc)
    except BaseException:
        pass


def _call_sync(call: Call) -> Outcome:
    if inspect.iscoroutinefunction(call.fn):
        return run_coroutine(_call_async(call))
    token = _sync_body.set(True)
    scope = scope_of(call.context)
    try:
        with _entered(call):
            try:
                with scope.running_sync() if scope else nullcontext():
                    with sync_timeout(call.timeout, call.timeout_error), exposed():
                        return Outcome(value=call.fn(*call.args, **call.kwargs))
            except RunCancelled:
                return Outcome(error=FlowRunCancelledError(scope.reason if scope else "the flow run was cancelled"))
            except (Exception, Pause) as exc:
                return Outcome(error=exc)
    finally:
        _sync_body.reset(token)


def run_coroutine(coroutine: Any) -> Any:
    """Run a coroutine to completion from sync code, on a new loop (in a new thread if one is running here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


async def _call_async(call: Call) -> Outcome:
    if not inspect.iscoroutinefunction(call.fn):
        return await asyncio.to_thread(_call_sync, call)
    token = _sync_body.set(False)  # code awaited here is async code, even inside a sync run
    cancel = scope_of(call.context)
    try:
        with _entered(call):
            scope = asyncio.timeout(call.timeout)
            try:
                with cancel.running_async() if cancel else nullcontext():
                    async with scope:
                        value = await call.fn(*call.args, **call.kwargs)
                return Outcome(value=value)
            except TimeoutError as exc:
                return Outcome(error=call.timeout_error() if scope.expired() else exc)
            except (asyncio.CancelledError, RunCancelled) as exc:
                if cancel is None or not cancel.requested:
                    raise
                if isinstance(exc, asyncio.CancelledError):
                    asyncio.current_task().uncancel()  # handled here: the task goes on as not cancelled
                return Outcome(error=FlowRunCancelledError(cancel.reason))
            except (Exception, Pause) as exc:
                return Outcome(error=exc)
    finally:
        _sync_body.reset(token)


class _entered:
    """Enter the run's context and print capture for the duration of a call."""

    def __init__(self, call: Call):
        self.call = call

    def __enter__(self) -> None:
        self._ctx = run_context.enter(self.call.context) if self.call.context else None
        if self._ctx:
            self._ctx.__enter__()
        prints.install_if_needed(self.call.context)

    def __exit__(self, *exc: Any) -> None:
        if self._ctx:
            self._ctx.__exit__(*exc)
