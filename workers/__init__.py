"""Celery workers: the app, the tasks that execute task runs and flow runs, and beat jobs.

A skeleton for now: execution is in-process (sdk.engine). The Celery app and its
tasks arrive with distributed execution; they will call the same engine and
orchestrator services, never write states themselves.
"""
