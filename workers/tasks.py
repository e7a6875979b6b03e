"""Celery tasks: thin, they take ids and references, and call the engine or a service."""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from workers.celery import app

logger = logging.getLogger("runway.worker")


@app.task(name="runway.ping")
def ping() -> str:
    """Answers 'pong': lets tests and operators check a worker is consuming."""
    return "pong"


@app.task(name="runway.run_task_run", bind=True)
def run_task_run(self, body: dict) -> None:
    """Orchestrate one task run a flow sent here (sdk/engine/remote.py describes `body`).

    The worker first claims the run: a message delivered twice, or a run another
    live worker holds, is dropped. While the task runs, heartbeats tell the
    orchestrator this worker is alive. A retry delay longer than a second is not
    slept through: the run waits in the orchestrator as AwaitingRetry and this
    task is sent again for when it is due.
    """
    from sdk.client import get_client
    from sdk.engine.hosts import hostname
    from sdk.engine.remote import execute
    from sdk.logging.handlers import flush_logs

    client, run_id = get_client(), UUID(body["task_run_id"])
    queue = (self.request.delivery_info or {}).get("routing_key")
    worker = self.request.hostname or f"pid-{os.getpid()}"
    status, reason = client.claim_task_run(run_id, worker=worker, hostname=hostname(), pid=os.getpid(),
                                           dispatch={"body": body, "queue": queue})  # fmt: skip
    if status != "claimed":
        logger.info("not running task run %s (%s): %s", body.get("name"), status, reason)
        return
    try:
        with _heartbeats(client, run_id, worker):
            deferred = execute(body, client)
    finally:
        flush_logs()  # a pool process may end without running exit handlers
    if deferred is not None:
        self.apply_async(args=[body], countdown=deferred.seconds, queue=queue)


@contextmanager
def _heartbeats(client: Any, run_id: UUID, worker: str) -> Iterator[None]:
    """Beat for `run_id` every RUNWAY_HEARTBEAT_SECONDS while the block runs."""
    from sdk.settings import get_settings

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(get_settings().heartbeat_seconds):
            try:
                client.heartbeat_task_runs([run_id], worker)
            except Exception:  # the orchestrator is briefly unreachable: the next beat may pass
                logger.warning("heartbeat for task run %s failed", run_id, exc_info=True)

    thread = threading.Thread(target=beat, name="runway-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def resend(dispatches: list[dict[str, Any]]) -> None:
    """Send again the messages of runs the sweep retried (their dispatch: {"body", "queue"})."""
    for dispatch in dispatches:
        run_task_run.apply_async(args=[dispatch["body"]], queue=dispatch.get("queue"))
