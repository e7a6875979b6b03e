"""`CeleryTaskRunner`: a flow's submitted task runs execute on Celery workers.

    @flow(task_runner=CeleryTaskRunner())          # queue: RUNWAY_DEFAULT_QUEUE ("runway")
    @flow(task_runner=CeleryTaskRunner(queue="gpu"))
    @task(queue="io")                              # this task's runs go to "io", whatever the flow says

Each run is created Pending here as with any runner. A dispatcher thread waits
for its upstream futures, then sends one JSON message naming the task's code
and carrying the run id and its parameters (as result references: see
sdk/engine/remote.py). A watcher thread asks the orchestrator for the states of
the runs in flight and completes each future when its run is final; the value
comes from result storage, never through the broker. Retries, caching and
limits are decided by the orchestrator's rules, on the worker.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING
from uuid import UUID

from sdk.engine import inputs, remote
from sdk.engine.driver import run_sync
from sdk.exceptions import UpstreamTaskError
from sdk.states import State
from sdk.task_runners import BaseTaskRunner

if TYPE_CHECKING:
    from sdk.engine.task_engine import TaskRunEngine

WATCH_BATCH = 500  # runs asked about per look


class CeleryTaskRunner(BaseTaskRunner):
    """Sends submitted task runs to Celery workers; `queue` defaults to the app's default queue."""

    def __init__(self, queue: str | None = None, poll_interval: float = 0.1, dispatchers: int = 8) -> None:
        self.queue, self.poll_interval, self.dispatchers = queue, poll_interval, dispatchers
        self._pool: ThreadPoolExecutor | None = None
        self._watching: dict[UUID, Future] = {}
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._client = None

    def duplicate(self) -> CeleryTaskRunner:
        return CeleryTaskRunner(self.queue, self.poll_interval, self.dispatchers)

    def submit(self, fn):
        raise TypeError("CeleryTaskRunner runs task runs on workers (submit_run), not callables")

    def submit_run(self, engine: TaskRunEngine) -> Future:
        remote.task_reference(engine.task)  # fail at submission if no worker could import it
        future: Future = Future()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.dispatchers, thread_name_prefix="runway-dispatch")
        self._pool.submit(self._dispatch, engine, future)
        return future

    def _dispatch(self, engine: TaskRunEngine, future: Future) -> None:
        """Wait for upstream runs, then send; an upstream failure is recorded here (NotReady)."""
        try:
            try:
                parameters = inputs.resolve(engine.parameters, engine.wait_for)
            except UpstreamTaskError:
                future.set_result(run_sync(engine.steps()))
                return
            storage = engine.flow_ctx.result_storage if engine.flow_ctx else None
            body = remote.message(engine, parameters, storage)
            self._watch(engine.run.id, future, engine.client)
            from workers.tasks import run_task_run

            run_task_run.apply_async(args=[body], queue=engine.task.queue or self.queue)
        except BaseException as exc:
            future.set_exception(exc)

    # --- watching the runs in flight --------------------------------------------------
    def _watch(self, run_id: UUID, future: Future, client) -> None:
        with self._lock:
            self._watching[run_id] = future
            self._client = client
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch_loop, name="runway-watch", daemon=True)
                self._watcher.start()

    def _watch_loop(self) -> None:
        from sdk.settings import get_settings

        next_sweep = time.monotonic() + get_settings().sweep_seconds
        while True:
            with self._lock:
                ids = list(self._watching)
                if not ids:
                    self._watcher = None
                    return
            for start in range(0, len(ids), WATCH_BATCH):
                self._settle(ids[start : start + WATCH_BATCH])
            if time.monotonic() >= next_sweep:  # no live worker may be left to notice a dead one
                self._sweep(ids)
                next_sweep = time.monotonic() + get_settings().sweep_seconds
            time.sleep(self.poll_interval)

    def _sweep(self, ids: list[UUID]) -> None:
        """Crash (and retry, if they may) this flow's runs whose worker went quiet."""
        from workers.tasks import resend

        try:
            for start in range(0, len(ids), WATCH_BATCH):
                resend(self._client.sweep_lost_task_runs(ids[start : start + WATCH_BATCH]))
        except Exception:  # the orchestrator is unreachable for now: sweep again next time
            return

    def _settle(self, ids: list[UUID]) -> None:
        try:
            states = self._client.get_task_run_states(ids)
        except Exception:  # the orchestrator is unreachable for now: look again next time
            return
        for run_id, schema in states.items():
            if schema.is_terminal:
                with self._lock:
                    future = self._watching.pop(run_id, None)
                if future is not None and not future.done():
                    future.set_result(State.from_schema(schema))

    def shutdown(self, wait: bool = True) -> None:
        """With wait, until every sent run is final; without, stop watching (the runs go on on the workers)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
        if not wait:
            with self._lock:
                self._watching.clear()
            return
        while True:
            with self._lock:
                pending = list(self._watching.values())
            if not pending:
                return
            for future in pending:
                future.result()

    def __repr__(self) -> str:
        return f"CeleryTaskRunner(queue={self.queue!r})"
