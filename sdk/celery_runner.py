"""`CeleryTaskRunner`: a flow's submitted task runs execute on Celery workers.

    @flow(task_runner=CeleryTaskRunner())          # queue: RUNWAY_DEFAULT_QUEUE ("runway")
    @flow(task_runner=CeleryTaskRunner(queue="gpu"))
    @task(queue="io")                              # this task's runs go to "io", whatever the flow says

Each run is created Pending here as with any runner. Once its upstream futures
are done (a run waiting for them holds no thread), a dispatcher thread sends one
JSON message naming the task's code and carrying the run id and its parameters
(as result references: see sdk/engine/remote.py). A watcher thread asks the
orchestrator for the states of the runs in flight and completes each future when
its run is final; the value comes from result storage, never through the broker.
Retries, caching and limits are decided by the orchestrator's rules, on the worker.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from sdk.engine import inputs, remote
from sdk.engine.driver import run_sync
from sdk.exceptions import UpstreamTaskError
from orchestrator.schemas import StateType
from sdk.states import Cancelled, State
from sdk.task_runners import BaseTaskRunner, wait_all, when_done

if TYPE_CHECKING:
    from sdk.engine.task_engine import TaskRunEngine

logger = logging.getLogger("runway.celery")
WATCH_BATCH = 500  # runs asked about per look
# Runs that ended are asked for since the newest end seen. A state stamped before that one but
# committed after it would be missed: the look naming every run in flight, every sweep interval,
# finds it.
MIN_POLL = 0.02  # seconds between looks while runs are finishing; up to poll_interval while none do


MAX_RESEND_WAIT = 600.0  # seconds: a run waiting behind a long queue is sent again at most this rarely


@dataclass
class _Sent:
    """A run's message, when it was last sent, and how long to wait before sending it again."""

    body: dict
    queue: str | None
    message_ids: list[str] = field(default_factory=list)  # Celery task ids of every send
    at: float = field(default_factory=time.monotonic)
    wait: float = field(default_factory=lambda: _resend_after())


def _resend_after() -> float:
    from sdk.settings import get_settings

    return get_settings().resend_seconds


def _warn_unserved(waiting: dict[str, int], quiet_for: float) -> None:
    """Say why the flow is not moving when its runs sit in a queue nobody serves (no worker started,
    a typo in the queue name): the usual cause, and the command that fixes it."""
    for queue, count in sorted(waiting.items()):
        logger.warning(
            "%d task run(s) sent to Celery queue %r have not started, and none of this flow's runs has "
            "ended for %.0f s; sent them again. Is a worker consuming that queue? Start one with "
            "`celery -A workers worker -Q %s` (runs waiting for a concurrency slot or a rate limit also wait here)",
            count, queue, quiet_for, queue,
        )  # fmt: skip


class CeleryTaskRunner(BaseTaskRunner):
    """Sends submitted task runs to Celery workers; `queue` defaults to the app's default queue."""

    def __init__(self, queue: str | None = None, poll_interval: float = 0.5, dispatchers: int = 1) -> None:
        self.queue, self.poll_interval, self.dispatchers = queue, poll_interval, dispatchers
        self._pool: ThreadPoolExecutor | None = None
        self._open: set[Future] = set()  # futures of the runs submitted and not yet final
        self._watching: dict[UUID, Future] = {}
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._client = None
        self._flow_run_id: UUID | None = None
        self._sent: dict[UUID, _Sent] = {}
        self._last_progress = time.monotonic()  # when one of the runs last ended

    def duplicate(self) -> CeleryTaskRunner:
        return CeleryTaskRunner(self.queue, self.poll_interval, self.dispatchers)

    def submit(self, fn):
        raise TypeError("CeleryTaskRunner runs task runs on workers (submit_run), not callables")

    def submit_run(self, engine: TaskRunEngine) -> Future:
        """The run is dispatched once its upstream futures are done: by a callback of the last one,
        not by a thread blocked on them (blocked dispatchers held up every run submitted after
        them, and eight of them cost the flow's process a seventh of its CPU in thread switches)."""
        remote.task_reference(engine.task)  # fail at submission if no worker could import it
        future: Future = Future()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.dispatchers, thread_name_prefix="runway-dispatch")
            self._open.add(future)
        future.add_done_callback(self._closed)
        when_done(inputs.upstream_futures(engine.parameters, engine.wait_for), lambda: self._release(engine, future))
        return future

    def _closed(self, future: Future) -> None:
        with self._lock:
            self._open.discard(future)

    def _release(self, engine: TaskRunEngine, future: Future) -> None:
        """Queue the run for a dispatcher; if the runner stopped meanwhile (the flow run ended or was
        cancelled before the run's upstream finished), the run is not sent."""
        try:
            self._pool.submit(self._dispatch, engine, future)
        except RuntimeError:  # the pool was shut down
            if not future.done():
                future.set_result(Cancelled(message="Not sent: the flow run ended before its upstream runs did"))

    def _dispatch(self, engine: TaskRunEngine, future: Future) -> None:
        """Send a run whose upstream runs are done; an upstream failure is recorded here (NotReady)."""
        try:
            try:
                parameters = inputs.resolve(engine.parameters, engine.wait_for)
            except UpstreamTaskError:
                future.set_result(run_sync(engine.steps()))
                return
            storage = engine.flow_ctx.result_storage if engine.flow_ctx else None
            body = remote.message(engine, parameters, storage)
            self._watch(engine, future)
        except BaseException as exc:
            future.set_exception(exc)
            return
        from workers.celery import app

        self._send(engine.run.id, _Sent(body, engine.task.queue or self.queue or app.conf.task_default_queue))

    def _send(self, run_id: UUID, sent: _Sent) -> None:
        """Send (again) the message of a run; if the broker cannot take it now, the next look resends it."""
        from workers.tasks import send

        with self._lock:
            self._sent[run_id] = sent
        try:
            sent.message_ids.append(send(sent.body, sent.queue))
        except Exception as exc:  # the broker is down: keep the run, send it again later
            sent.at = 0.0
            logger.warning("could not send task run %s to the broker (%s); will send it again", sent.body["name"], exc)

    def _resend_waiting(self, ids: list[UUID]) -> None:
        """Send again the runs still Pending long after their message was sent, when none of the flow's
        runs has ended for as long: the broker may have lost the messages (a restart without
        persistence). While runs keep ending, the queue is only long, and duplicates would make it
        longer. A worker that gets a message twice runs the run once (its claim)."""
        now = time.monotonic()
        if now - self._last_progress < _resend_after():
            return
        with self._lock:
            due = [(run_id, self._sent[run_id]) for run_id in ids
                   if run_id in self._sent and now - self._sent[run_id].at >= self._sent[run_id].wait]  # fmt: skip
        if not due:
            return
        try:
            states = self._client.get_task_run_states([run_id for run_id, _ in due])
        except Exception:  # the orchestrator is unreachable for now: look again next time
            return
        waiting: dict[str, int] = {}
        for run_id, sent in due:
            state = states.get(run_id)
            if state is None or state.type == StateType.PENDING:
                sent.at, sent.wait = now, min(sent.wait * 2, MAX_RESEND_WAIT)
                self._send(run_id, sent)
                waiting[sent.queue or "?"] = waiting.get(sent.queue or "?", 0) + 1
        if waiting:
            _warn_unserved(waiting, now - self._last_progress)

    # --- watching the runs in flight --------------------------------------------------
    def _watch(self, engine: TaskRunEngine, future: Future) -> None:
        with self._lock:
            self._watching[engine.run.id] = future
            self._client = engine.client
            self._flow_run_id = engine.flow_ctx.flow_run.id if engine.flow_ctx else None
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch_loop, name="runway-watch", daemon=True)
                self._watcher.start()

    def _watch_loop(self) -> None:
        """Complete futures as their runs end: ask for the flow run's runs that ended since the last
        look, and every sweep interval also name every run in flight (a safety net for commits
        landing out of order) and sweep for runs whose worker vanished."""
        from sdk.settings import get_settings

        next_full = time.monotonic() + get_settings().sweep_seconds
        pause, since = MIN_POLL, None
        while True:
            with self._lock:
                ids = list(self._watching)
                if not ids:
                    self._watcher = None
                    return
            full = self._flow_run_id is None or time.monotonic() >= next_full
            if full:
                settled = sum(self._settle(ids[i : i + WATCH_BATCH]) for i in range(0, len(ids), WATCH_BATCH))
                self._sweep(ids)
                self._resend_waiting(ids)
                next_full = time.monotonic() + get_settings().sweep_seconds
            else:
                settled, since = self._settle_since(since)
            # Look again soon while runs are ending, less often while none do.
            pause = MIN_POLL if settled else min(pause * 1.5, self.poll_interval)
            time.sleep(pause)

    def _settle_since(self, since: datetime | None) -> tuple[int, datetime | None]:
        try:
            found = self._client.get_final_task_run_states_since(self._flow_run_id, since)
        except Exception:  # the orchestrator is unreachable for now: look again next time
            return 0, since
        settled = sum(self._resolve(run_id, schema) for run_id, schema in found)
        if found:
            since = max(schema.timestamp for _, schema in found)
        return settled, since

    def _resolve(self, run_id: UUID, schema) -> bool:
        with self._lock:
            future = self._watching.pop(run_id, None)
            self._sent.pop(run_id, None)
        if future is None or future.done():
            return False
        future.set_result(State.from_schema(schema))
        self._last_progress = time.monotonic()
        return True

    def _sweep(self, ids: list[UUID]) -> None:
        """Crash (and retry, if they may) this flow's runs whose worker went quiet."""
        from workers.tasks import resend

        try:
            for start in range(0, len(ids), WATCH_BATCH):
                resend(self._client.sweep_lost_task_runs(ids[start : start + WATCH_BATCH]))
        except Exception:  # the orchestrator is unreachable for now: sweep again next time
            return

    def _settle(self, ids: list[UUID]) -> int:
        """Complete the futures of the runs among `ids` that are final; returns how many."""
        try:
            states = self._client.get_task_run_states(ids, final_only=True)
        except Exception:  # the orchestrator is unreachable for now: look again next time
            return 0
        return sum(self._resolve(run_id, schema) for run_id, schema in states.items())

    def shutdown(self, wait: bool = True) -> None:
        """With wait, until every submitted run is final (the ones still waiting for upstream runs are
        sent first); without, stop sending and watching (the runs sent go on on the workers)."""
        if wait:
            wait_all(self._open, self._lock)
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
        if not wait:
            with self._lock:
                self._watching.clear()

    def cancel(self) -> None:
        """The flow run was cancelled: stop dispatching, revoke the messages of the runs not yet
        final (workers drop them, or kill the process running one), stop watching."""
        from workers.tasks import revoke

        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            ids = [message_id for sent in self._sent.values() for message_id in sent.message_ids]
            waiting = [*self._watching.values(), *self._open]  # sent, and not yet sent
            self._watching.clear()
        for future in waiting:  # nothing will settle them now: whoever waits on them learns why
            if not future.done():
                future.set_result(Cancelled(message="Not finished: the flow run was cancelled"))
        try:
            revoke(ids)
        except Exception as exc:  # the broker is down: the runs are refused their start anyway
            logger.warning("could not revoke %d task run message(s): %s", len(ids), exc)

    def __repr__(self) -> str:
        return f"CeleryTaskRunner(queue={self.queue!r})"
