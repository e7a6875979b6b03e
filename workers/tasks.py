"""Celery tasks: thin, they take ids and references, and call the engine or a service."""
from __future__ import annotations

from workers.celery import app


@app.task(name="runway.ping")
def ping() -> str:
    """Answers 'pong': lets tests and operators check a worker is consuming."""
    return "pong"


@app.task(name="runway.run_task_run", bind=True)
def run_task_run(self, body: dict) -> None:
    """Orchestrate one task run a flow sent here (sdk/engine/remote.py describes `body`).

    A retry delay longer than a second is not slept through: the run waits in
    the orchestrator as AwaitingRetry and this task is sent again for when it is due.
    """
    from sdk.client import get_client
    from sdk.engine.remote import execute
    from sdk.logging.handlers import flush_logs

    try:
        deferred = execute(body, get_client())
    finally:
        flush_logs()  # a pool process may end without running exit handlers
    if deferred is not None:
        queue = (self.request.delivery_info or {}).get("routing_key")
        self.apply_async(args=[body], countdown=deferred.seconds, queue=queue)
