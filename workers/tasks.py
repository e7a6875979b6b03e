"""Celery tasks: thin, they take ids and references, and call the engine or a service."""
from __future__ import annotations

from workers.celery import app


@app.task(name="runway.ping")
def ping() -> str:
    """Answers 'pong': lets tests and operators check a worker is consuming."""
    return "pong"
