"""Task runners: where submitted task runs execute.

`ConcurrentTaskRunner` (the default) runs them in a thread pool; a run enters
the pool once its upstream runs are done, so runs waiting on a slow one hold no
thread and hold up no run submitted after them (Prefect 2's runner has no cap).
`SequentialTaskRunner` runs each at submission, one at a time.
`CeleryTaskRunner` (sdk/celery_runner.py) sends them to Celery workers.
"""
from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdk.engine.task_engine import TaskRunEngine


class BaseTaskRunner:
    """Runs the callables the engine submits and returns concurrent futures of their results."""

    def duplicate(self) -> BaseTaskRunner:
        """A fresh runner with the same options, one per flow run attempt."""
        return type(self)()

    def submit(self, fn: Callable[[], Any]) -> Future:
        raise NotImplementedError

    def submit_run(self, engine: TaskRunEngine) -> Future:
        """Execute a created task run's engine; the future's result is its final state.

        Runners that execute in this process run the engine's steps; a runner
        that sends runs elsewhere overrides this.
        """
        from sdk.engine.driver import run_sync

        return self.submit(lambda: run_sync(engine.steps()))

    def shutdown(self, wait: bool = True) -> None:
        """Wait for what was submitted (or with wait=False, drop what has not started)."""

    def cancel(self) -> None:
        """The flow run was cancelled: drop what has not started (running code is interrupted by
        its cancel scope, sdk/engine/cancellation.py)."""
        self.shutdown(wait=False)

    @property
    def name(self) -> str:
        return type(self).__name__.replace("TaskRunner", "").lower()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SequentialTaskRunner(BaseTaskRunner):
    def submit(self, fn: Callable[[], Any]) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        return future


def when_done(futures: list, then: Callable[[], None]) -> None:
    """Call `then` once every one of `futures` is done: now if they are, else from the last one's callback."""
    pending = [f for f in futures if not f.done()]
    if not pending:
        then()
        return
    remaining, lock = [len(pending)], threading.Lock()

    def one_done(_: object) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            then()

    for upstream in pending:
        upstream.add_done_callback(one_done)


def wait_all(futures: set[Future], lock: threading.Lock) -> None:
    """Wait until `futures`, a set other threads add to (runs released meanwhile) and remove
    from (runs ended), is empty."""
    while True:
        with lock:
            pending = list(futures)
        if not pending:
            return
        concurrent.futures.wait(pending)


def _settle_from(source: Future, target: Future) -> None:
    """When `source` ends, end `target` the same way (result, exception or cancellation)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


class ConcurrentTaskRunner(BaseTaskRunner):
    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._open: set[Future] = set()  # futures of the runs submitted and not yet final
        self._waiting: set[Future] = set()  # those of runs still waiting for upstream runs

    def duplicate(self) -> ConcurrentTaskRunner:
        return ConcurrentTaskRunner(self.max_workers)

    def submit(self, fn: Callable[[], Any]) -> Future:
        context = contextvars.copy_context()
        return self._executor().submit(context.run, fn)

    def submit_run(self, engine: TaskRunEngine) -> Future:
        """The run enters the pool when its upstream futures are done (the last one's callback
        puts it there): before, each run waiting on a slow upstream held one of the pool's
        threads, and with all of them held, runs submitted later waited too."""
        from sdk.engine import inputs
        from sdk.engine.driver import run_sync

        future: Future = Future()
        context = contextvars.copy_context()  # the submitter's: the callback runs in another thread
        with self._lock:
            self._open.add(future)
            self._waiting.add(future)
        future.add_done_callback(self._closed)

        def start() -> None:
            with self._lock:
                self._waiting.discard(future)
            try:
                started = self._executor().submit(context.run, lambda: run_sync(engine.steps()))
            except RuntimeError:  # the pool was shut down: the flow run was cancelled meanwhile
                future.cancel()
                return
            started.add_done_callback(lambda done: _settle_from(done, future))

        when_done(inputs.upstream_futures(engine.parameters, engine.wait_for), start)
        return future

    def _closed(self, future: Future) -> None:
        with self._lock:
            self._open.discard(future)
            self._waiting.discard(future)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    from sdk.settings import get_settings

                    workers = self.max_workers or get_settings().task_runner_threads
                    self._pool = ThreadPoolExecutor(workers, thread_name_prefix="runway-task")
        return self._pool

    def shutdown(self, wait: bool = True) -> None:
        """With wait, until every submitted run is final (those waiting on upstream runs included);
        without, drop the runs not started: queued ones and those still waiting are cancelled."""
        if wait:
            wait_all(self._open, self._lock)
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
        if not wait:
            with self._lock:
                waiting = list(self._waiting)
            for future in waiting:  # not started: cancelled, as the pool's queued ones are
                future.cancel()

    def __repr__(self) -> str:
        return f"ConcurrentTaskRunner(max_workers={self.max_workers})"


def __getattr__(name: str) -> Any:
    """`from sdk.task_runners import CeleryTaskRunner` without importing Celery for everyone else."""
    if name == "CeleryTaskRunner":
        from sdk.celery_runner import CeleryTaskRunner

        return CeleryTaskRunner
    raise AttributeError(f"module 'sdk.task_runners' has no attribute {name!r}")
