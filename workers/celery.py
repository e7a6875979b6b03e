"""The Celery app, configured from Django settings (every CELERY_* setting in orchestrator/settings.py).

`celery -A workers worker` finds it as `workers.app`. The broker is the
embedded filesystem transport under RUNWAY_HOME unless RUNWAY_BROKER_URL names
Redis or RabbitMQ; messages are JSON only.
"""
from __future__ import annotations

import os

from celery import Celery

from workers.rate_limits import RateLimitedRegistry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("runway", tasks=RateLimitedRegistry())  # makes the tasks of rate-limited runs on demand
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")


from workers.sweep import LostRunSweep  # noqa: E402  (a worker bootstep; reads settings only when started)

app.steps["worker"].add(LostRunSweep)  # every worker sweeps for runs whose worker vanished

from workers.agent import ReleaseDueRuns  # noqa: E402  (registers runway.run_flow_run)

app.steps["worker"].add(ReleaseDueRuns)  # every worker releases the due runs of the work queues it serves
