"""Stopping a flow run someone cancelled, in the process that runs it.

Cancelling a running flow run (UI, API, CLI, `cancel_flow_run`) only moves it
to Cancelling in the orchestrator. Every process running flow runs has one
watcher thread that asks, every RUNWAY_CANCEL_CHECK_SECONDS, for the states of
the flow runs it runs. When one is Cancelling, its `CancelScope` fires:

- the code of the flow and of its task runs in this process is interrupted:
  `FlowRunCancelledError` is raised into each thread running it (in sync code
  at its next Python instruction, never inside Runway's own code: see
  sdk/engine/timeouts.py), and async code has its asyncio task cancelled;
- the task runner drops what it has not started (Celery messages are revoked);
- the subflows running inside it are cancelled with it.

The flow run's engine then proposes Cancelled, which takes its unfinished task
runs to Cancelled (orchestrator rule FinishUnfinishedTaskRuns). An agent that
runs the process also watches, and kills a process that has not stopped
within RUNWAY_CANCEL_GRACE_SECONDS (workers/agent.py).
"""
from __future__ import annotations

import asyncio
import logging
import signal
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sdk.engine import timeouts

if TYPE_CHECKING:
    from sdk.client.base import OrchestrationClient

logger = logging.getLogger("runway.engine")


class RunCancelled(timeouts.Interruption):
    """Raised into a cancelled run's code; a BaseException so `except Exception` cannot swallow it."""


class CancelScope:
    """The code running for one flow run in this process, and whether it was cancelled."""

    def __init__(self, parent: CancelScope | None = None) -> None:
        self.reason = ""
        self._requested = threading.Event()
        self._lock = threading.Lock()
        self._threads: dict[int, bool] = {}  # thread id -> interrupted
        self._tasks: set[tuple[asyncio.AbstractEventLoop, asyncio.Task]] = set()
        self._children: weakref.WeakSet[CancelScope] = weakref.WeakSet()  # a finished subflow's scope goes with it
        self._after: list[Any] = []  # callables run once when the scope fires (the task runner's revoke)
        self.marker = type("FlowRunCancelled", (RunCancelled,), {})
        if parent is not None:
            parent._adopt(self)

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def _adopt(self, child: CancelScope) -> None:
        with self._lock:
            self._children.add(child)
            fired = self.requested
        if fired:
            child.cancel(self.reason)

    def on_cancel(self, action: Any) -> None:
        """Call `action()` when the scope fires (at once if it has)."""
        with self._lock:
            self._after.append(action)
            fired = self.requested
        if fired:
            _safely(action)

    def cancel(self, reason: str) -> None:
        """Interrupt everything running under this scope and its children; idempotent."""
        with self._lock:
            if self.requested:
                return
            self.reason = reason
            self._requested.set()
            threads, tasks = list(self._threads), list(self._tasks)
            for thread in threads:
                self._threads[thread] = True
            children, after = list(self._children), list(self._after)
        for action in after:
            _safely(action)
        for thread in threads:
            timeouts.interrupt(thread, self.marker)
            if thread == threading.main_thread().ident and signal.getsignal(_WAKE) is _wake:
                signal.pthread_kill(thread, _WAKE)  # a blocking call (time.sleep) returns to let it surface
        for loop, task in tasks:
            loop.call_soon_threadsafe(task.cancel)
        for child in children:
            child.cancel(reason)

    @contextmanager
    def running_sync(self) -> Iterator[None]:
        """The calling thread runs the run's code for the block: it may be interrupted there."""
        thread = threading.get_ident()
        with self._lock:
            nested = thread in self._threads  # a task called from the flow's code, in its thread
        if nested:
            yield
            return
        with timeouts.interruptible(self.marker), _wakeable():
            with self._lock:
                self._threads[thread] = False
                fired = self.requested
            try:
                if fired:
                    raise self.marker()
                yield
            finally:
                with self._lock:
                    interrupted = self._threads.pop(thread, False)
                if interrupted:  # not surfaced yet: it must not surface in Runway's code
                    timeouts._set_async_exc(thread, None)

    @contextmanager
    def running_async(self) -> Iterator[None]:
        """The current asyncio task runs the run's code for the block: it is cancelled if the run is."""
        entry = (asyncio.get_running_loop(), asyncio.current_task())
        with self._lock:
            self._tasks.add(entry)
            fired = self.requested
        try:
            if fired:
                raise self.marker()
            yield
        finally:
            with self._lock:
                self._tasks.discard(entry)


_WAKE = signal.SIGURG  # ignored by default, unused by Celery and the standard library


def _wake(signum: int, frame: Any) -> None:
    """Nothing: a Python-level handler is where a pending interruption surfaces in the main thread."""


@contextmanager
def _wakeable() -> Iterator[None]:
    """In the main thread, let `cancel` wake a blocking call with a signal."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(_WAKE) not in (signal.SIG_DFL, None):
        yield
        return
    signal.signal(_WAKE, _wake)
    try:
        yield
    finally:
        signal.signal(_WAKE, signal.SIG_DFL)


def _safely(action: Any) -> None:
    try:
        action()
    except Exception:
        logger.exception("stopping a cancelled flow run's work failed")


def scope_of(context: Any) -> CancelScope | None:
    """The cancel scope of the flow run a context belongs to (a task run's: its flow run's)."""
    flow_ctx = getattr(context, "flow_run_context", None) or context
    return getattr(flow_ctx, "cancel_scope", None)


# --- the watcher: one thread per process, for every flow run it runs ----------------------
class _Watcher:
    def __init__(self) -> None:
        self._runs: dict[UUID, tuple[OrchestrationClient, CancelScope]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, client: OrchestrationClient, flow_run_id: UUID, scope: CancelScope) -> Iterator[None]:
        with self._lock:
            self._runs[flow_run_id] = (client, scope)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="runway-cancel-watch", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._runs.pop(flow_run_id, None)

    def _loop(self) -> None:
        from sdk.settings import get_settings

        every = get_settings().cancel_check_seconds
        while True:
            with self._lock:
                runs = list(self._runs.items())
                if not runs:
                    self._thread = None
                    return
            for flow_run_id, (client, scope) in runs:
                if not scope.requested:
                    _look(client, flow_run_id, scope)
            threading.Event().wait(every)


def _look(client: OrchestrationClient, flow_run_id: UUID, scope: CancelScope) -> None:
    try:
        state = client.read_flow_run(flow_run_id)["state"]
    except Exception:  # the orchestrator is briefly unreachable: look again next time
        return
    if state is not None and state.type.value in ("CANCELLING", "CANCELLED"):
        logger.info(f"Flow run {flow_run_id} was cancelled ({state.message or state.name}); stopping it")
        scope.cancel(state.message or "the flow run was cancelled")


watcher = _Watcher()
