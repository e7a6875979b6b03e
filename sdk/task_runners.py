"""Task runners: where submitted task runs execute.

`ConcurrentTaskRunner` (the default) runs them in a thread pool; submissions
start in order, so a task waiting on an earlier future never starves the pool.
`SequentialTaskRunner` runs each at submission, one at a time.
`CeleryTaskRunner` (sdk/celery_runner.py) sends them to Celery workers.
"""
from __future__ import annotations

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


class ConcurrentTaskRunner(BaseTaskRunner):
    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def duplicate(self) -> ConcurrentTaskRunner:
        return ConcurrentTaskRunner(self.max_workers)

    def submit(self, fn: Callable[[], Any]) -> Future:
        context = contextvars.copy_context()
        return self._executor().submit(context.run, fn)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    from sdk.settings import get_settings

                    workers = self.max_workers or get_settings().task_runner_threads
                    self._pool = ThreadPoolExecutor(workers, thread_name_prefix="runway-task")
        return self._pool

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def __repr__(self) -> str:
        return f"ConcurrentTaskRunner(max_workers={self.max_workers})"


def __getattr__(name: str) -> Any:
    """`from sdk.task_runners import CeleryTaskRunner` without importing Celery for everyone else."""
    if name == "CeleryTaskRunner":
        from sdk.celery_runner import CeleryTaskRunner

        return CeleryTaskRunner
    raise AttributeError(f"module 'sdk.task_runners' has no attribute {name!r}")
