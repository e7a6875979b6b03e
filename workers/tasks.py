"""Celery tasks: thin, they take ids and references, and call the engine or a service."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from celery.app.trace import build_tracer
from celery.signals import task_postrun, task_prerun, worker_process_shutdown
from django.conf import settings
from django.db import close_old_connections

from workers import rate_limits
from workers.celery import app

logger = logging.getLogger("runway.worker")


@app.task(name="runway.ping")
def ping() -> str:
    """Answers 'pong': lets tests and operators check a worker is consuming."""
    return "pong"


@app.task(name="runway.schedule_deployment_runs")
def schedule_deployment_runs(schedule_id: int) -> int:
    """Beat's job for one deployment schedule: create its upcoming runs (idempotent per slot)."""
    from orchestrator.deployments.scheduling import schedule_runs_create

    made = schedule_runs_create(schedule_id=schedule_id)
    if made:
        logger.info("schedule %s: created %d upcoming flow run(s)", schedule_id, made)
    return made


@app.task(name="runway.send_notification")
def send_notification(delivery_id: str) -> str:
    """Send one notification delivery (orchestrator/notifications): the service claims it, so a message
    delivered twice sends once, records the outcome, and sends this task again for a retry."""
    from orchestrator.notifications.services import notification_delivery_attempt

    outcome = notification_delivery_attempt(delivery_id=UUID(delivery_id))
    logger.info("notification delivery %s: %s", delivery_id, outcome)
    return outcome


def _run_task_run(self, body: dict) -> None:
    """Orchestrate one task run a flow sent here (sdk/engine/remote.py describes `body`).

    The worker claims the run as it proposes Running (one call): a message
    delivered twice, or a run another live worker holds, is dropped. While the
    task runs, heartbeats tell the orchestrator this worker is alive. A retry
    delay longer than a second is not
    slept through: the run waits in the orchestrator as AwaitingRetry, and this
    task is sent again with a countdown if it is due within RUNWAY_SWEEP_SECONDS,
    else by a worker's sweep once it is due (no message is held for long: a
    broker's visibility or consumer timeout would deliver it twice or drop it).
    """
    from sdk.client import get_client
    from sdk.engine.hosts import hostname
    from sdk.engine.remote import NotClaimed, execute
    client, run_id = get_client(), UUID(body["task_run_id"])
    queue = (self.request.delivery_info or {}).get("routing_key")
    # The pool process, not only the worker: two processes of one worker must not both hold a run.
    worker = f"{self.request.hostname or 'celery'}/{os.getpid()}"
    claim = {"worker": worker, "hostname": hostname(), "pid": os.getpid(), "dispatch": {"body": body, "queue": queue}}
    try:
        with _heartbeats.beating(client, run_id, worker):  # beats count only once the run is claimed
            deferred = execute(body, client, claim)
    except NotClaimed as exc:
        logger.info("not running task run %s (%s): %s", body.get("name"), exc.status, exc.reason)
        return
    if deferred is None:
        return
    client.release_task_run(run_id, worker=worker)  # first: the next message may reach another worker
    if deferred.seconds <= settings.RUNWAY_SWEEP_SECONDS:
        self.apply_async(args=[body], countdown=deferred.seconds, queue=queue, argsrepr=_argsrepr(body), kwargsrepr="{}")
    else:  # a Celery ETA would be a message held for that long: the run waits in the database instead
        logger.info("task run %s waits %.0f s in the database; a worker's sweep sends it when it is due",
                    body.get("name"), deferred.seconds)  # fmt: skip


run_task_run = app.task(name=rate_limits.TASK_NAME, bind=True)(_run_task_run)
_registering = threading.RLock()


def rate_limited_task(rate: str) -> Any:
    """The Celery task for runs of tasks limited to `rate` ("10/s"): the same as run_task_run,
    under its own name, so Celery's per-name token bucket paces it (workers/rate_limits.py)."""
    name = rate_limits.task_name(rate)
    with _registering:
        if name not in app._tasks:  # dict membership: does not make the task
            task = app.task(name=name, bind=True, rate_limit=rate, lazy=False)(_run_task_run)
            task.__trace__ = build_tracer(name, task, app.loader, app=app)  # a pool process runs it by name
        return app._tasks[name]


def send(body: dict, queue: str | None, **options: Any) -> str:
    """Publish a task run's message: under its rate-limited task name if its task has a rate limit.
    Returns the message's Celery task id (what `revoke` takes)."""
    task = rate_limited_task(body["rate_limit"]) if body.get("rate_limit") else run_task_run
    return task.apply_async(args=[body], queue=queue, argsrepr=_argsrepr(body), kwargsrepr="{}", **options).id


def _argsrepr(body: dict) -> str:
    """What monitoring (`celery inspect`, Flower) shows of a message's arguments: the run, not the whole
    body. Given, so Celery does not build its safe repr of the body, a tenth of a flow's sending time."""
    return f"[task run {body.get('name')!r} {body.get('task_run_id')} of {body.get('task')}]"


def revoke(message_ids: list[str]) -> None:
    """Revoke messages of a cancelled flow run's task runs: workers drop those not started and stop
    (kill the pool process of) those running. The orchestrator stays the judge: a run whose message
    gets through anyway is refused its start (its flow run is not Running)."""
    if message_ids:
        app.control.revoke(message_ids, terminate=True, signal="SIGKILL")


class _Heartbeats:
    """One thread per worker process beats, every RUNWAY_HEARTBEAT_SECONDS, for the runs it is running."""

    def __init__(self) -> None:
        self._runs: dict[UUID, tuple[Any, str]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def beating(self, client: Any, run_id: UUID, worker: str) -> Iterator[None]:
        with self._lock:
            self._runs[run_id] = (client, worker)
            if self._thread is None or not self._thread.is_alive() or self._thread.pid != os.getpid():
                self._thread = threading.Thread(target=self._beat, name="runway-heartbeat", daemon=True)
                self._thread.pid = os.getpid()  # a forked pool process starts its own
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._runs.pop(run_id, None)

    def _beat(self) -> None:
        from sdk.settings import get_settings

        while True:
            time.sleep(get_settings().heartbeat_seconds)
            with self._lock:
                runs = dict(self._runs)
            groups: dict[tuple[int, str], list[UUID]] = {}
            clients: dict[int, Any] = {}
            for run_id, (client, worker) in runs.items():
                groups.setdefault((id(client), worker), []).append(run_id)
                clients[id(client)] = client
            for (client_key, worker), ids in groups.items():
                try:
                    clients[client_key].heartbeat_task_runs(ids, worker)
                except Exception:  # the orchestrator is briefly unreachable: the next beat may pass
                    logger.warning("heartbeat for %d task run(s) failed", len(ids), exc_info=True)


_heartbeats = _Heartbeats()


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(**_: Any) -> None:
    """Around each task, what Django does around each request: close a connection that errored
    or outlived CONN_MAX_AGE (a pooled one goes back to the pool); keep a healthy one open."""
    close_old_connections()


@worker_process_shutdown.connect
def _flush_logs_before_exit(**_: Any) -> None:
    """A pool process ends without running exit handlers: store its last batched log lines first."""
    from sdk.logging.handlers import flush_logs

    flush_logs()


def resend(dispatches: list[dict[str, Any]]) -> None:
    """Send again the messages of runs the sweep retried (their dispatch: {"body", "queue"})."""
    for dispatch in dispatches:
        send(dispatch["body"], dispatch.get("queue"))
