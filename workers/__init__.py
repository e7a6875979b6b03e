"""Celery workers: the app, the tasks that execute task runs and flow runs, and beat jobs.

Workers call the same engine and orchestrator services as every other caller;
they never write states themselves.
"""
from workers.celery import app

__all__ = ["app"]
