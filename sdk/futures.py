"""`RunwayFuture` (also importable as `PrefectFuture`): a submitted task run's eventual state."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sdk.states import State

if TYPE_CHECKING:
    from sdk.engine.task_engine import TaskRunEngine

R = TypeVar("R")


_sync_body: contextvars.ContextVar[bool] = contextvars.ContextVar("runway_sync_body", default=False)


def in_async_context() -> bool:
    """True when called from async code: an event loop runs in this thread and the code being run is
    not the body of a synchronous flow or task (a sync subflow of an async flow gets plain values)."""
    if _sync_body.get():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class RunwayFuture(Generic[R]):
    """A task run handed to a task runner.

    `result()` waits and returns the task's value (raising its exception),
    `wait()` returns the final state, `state` the state now. As in Prefect 2,
    `result()` and `wait()` return awaitables for an async task's run in async
    code, and answer directly for a sync task's run, even in an async flow.
    """

    def __init__(self, engine: TaskRunEngine, future: concurrent.futures.Future) -> None:
        self._engine: TaskRunEngine | None = engine
        self._future = future
        self.asynchronous = inspect.iscoroutinefunction(engine.task.fn)
        self.task_run_id = engine.run.id
        self.name = engine.run.name
        self.observed = False  # a failure the flow looked at counts as handled
        future.add_done_callback(self._release_engine)

    def _release_engine(self, _: concurrent.futures.Future) -> None:
        """Keep only the final state once done: a flow may hold thousands of futures."""
        self._engine = None

    @property
    def state(self) -> State:
        self.observed = True
        engine = self._engine
        if engine is not None and not self._future.done():
            return engine.state
        return self._future.result()

    def get_state(self) -> Any:
        """The state now; in async code an awaitable of it, as Prefect 2's `await future.get_state()`."""
        if in_async_context():
            return _ready(self.state)
        return self.state

    def wait(self, timeout: float | None = None) -> Any:
        """The final state, or None if `timeout` seconds pass first."""
        if self._awaitable():
            return asyncio.to_thread(self._wait, timeout)
        return self._wait(timeout)

    def _awaitable(self) -> bool:
        return self.asynchronous and in_async_context()

    def _wait(self, timeout: float | None) -> State | None:
        self.observed = True
        return self.final_state(timeout)

    def final_state(self, timeout: float | None = None) -> State | None:
        """Wait for the final state without counting as the flow having looked at it (used by the engine)."""
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            return None

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The task's return value; raises its exception if it failed."""
        if self._awaitable():
            return asyncio.to_thread(self._result, timeout, raise_on_failure)
        return self._result(timeout, raise_on_failure)

    def _result(self, timeout: float | None, raise_on_failure: bool) -> R:
        state = self._wait(timeout)
        if state is None:
            raise TimeoutError(f"task run {self.name!r} did not finish within {timeout} seconds")
        return state.result(raise_on_failure=raise_on_failure)

    def done(self) -> bool:
        return self._future.done()

    def add_done_callback(self, fn: Any) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    def __await__(self):
        """`await task.submit(...)` in an async flow gives the future itself, as in Prefect 2."""
        yield from asyncio.sleep(0).__await__()
        return self

    def __hash__(self) -> int:
        return hash(self.task_run_id)

    def __repr__(self) -> str:
        return f"RunwayFuture({self.name!r})"


async def _ready(value: Any) -> Any:
    return value


PrefectFuture = RunwayFuture
