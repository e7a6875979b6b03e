"""Deployment schedules as beat periodic tasks, and the Scheduled runs they create ahead of time.

Each schedule of an active deployment has a django-celery-beat PeriodicTask
(DatabaseScheduler) that every RUNWAY_SCHEDULE_SECONDS asks a worker to create
the schedule's runs due within RUNWAY_SCHEDULE_HORIZON_SECONDS. A run's
idempotency key names its deployment and slot, and the database holds it unique,
so beat restarted, or two beats by mistake, never make a second run for a slot.

Catch-up: runs are created from now on. A slot that passed while beat and every
worker were down gets no run (no burst of stale runs after downtime); a run that
was created ahead but not started in time is marked Late and still runs.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestrator.deployments.models import Deployment, DeploymentSchedule
from orchestrator.deployments.schedules import due_times
from orchestrator.runs.models import FlowRun
from orchestrator.schemas import StateType

TASK_NAME = "runway.schedule_deployment_runs"
KEY_PREFIX = "scheduled:"


def slot_key(deployment: Deployment, slot: datetime) -> str:
    return f"{KEY_PREFIX}{deployment.pk}:{slot.astimezone(dt_timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def schedule_runs_create(*, schedule_id: int, now: datetime | None = None) -> int:
    """Create the runs of one schedule due within the horizon that do not exist yet; returns how many."""
    from orchestrator.deployments.services import deployment_run_create

    now = now or timezone.now()
    row = DeploymentSchedule.objects.select_related("deployment__flow").filter(pk=schedule_id).first()
    if row is None or not row.active or row.deployment.is_paused:
        return 0
    deployment = row.deployment
    slots = _slots(row, now)
    keys = {slot_key(deployment, slot): slot for slot in slots}
    existing = set(FlowRun.objects.filter(flow_id=deployment.flow_id, idempotency_key__in=list(keys))
                   .values_list("idempotency_key", flat=True))  # fmt: skip
    made = 0
    for key, slot in keys.items():
        if key in existing:
            continue
        with transaction.atomic():  # not while the deployment is being paused (which removes future runs)
            locked = Deployment.objects.select_for_update().filter(pk=deployment.pk, is_paused=False).first()
            if locked is None or not DeploymentSchedule.objects.filter(pk=row.pk, active=True).exists():
                return made
            deployment_run_create(ref=str(deployment.pk), scheduled_time=slot, idempotency_key=key)
        made += 1
    return made


def _slots(row: DeploymentSchedule, now: datetime) -> list[datetime]:
    schedule = row.as_schedule()
    horizon = now + timedelta(seconds=settings.RUNWAY_SCHEDULE_HORIZON_SECONDS)
    most = settings.RUNWAY_SCHEDULE_MAX_RUNS
    least = min(settings.RUNWAY_SCHEDULE_MIN_RUNS, most)
    slots = due_times(schedule, now, horizon, limit=most)
    if len(slots) < least:  # a weekly schedule still shows its next runs
        slots = due_times(schedule, now, now + timedelta(days=366), limit=least)
    return slots


def deployment_runs_create(deployment: Deployment, now: datetime | None = None) -> int:
    """Create the upcoming runs of all of a deployment's schedules (at deployment and on resume,
    so the next runs show at once, without waiting for beat)."""
    return sum(schedule_runs_create(schedule_id=pk, now=now) for pk in deployment.schedules.values_list("pk", flat=True))


def future_runs_delete(deployment: Deployment) -> int:
    """Delete the runs the schedules made for times still to come (paused, or schedules replaced).
    Runs already due, Late ones waiting for an agent among them, stay and run."""
    future = FlowRun.objects.filter(deployment=deployment, state_type=StateType.SCHEDULED, worker="",
                                    idempotency_key__startswith=KEY_PREFIX, run_count=0,
                                    next_scheduled_start_time__gt=timezone.now())  # fmt: skip
    deleted, _ = future.delete()
    return deleted


def periodic_tasks_sync(deployment: Deployment) -> None:
    """One enabled beat PeriodicTask per schedule of the deployment (disabled while it is paused);
    none left for schedules that are gone."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    prefix = f"runway schedule {deployment.pk} "
    every, _ = IntervalSchedule.objects.get_or_create(every=max(1, int(settings.RUNWAY_SCHEDULE_SECONDS)),
                                                      period=IntervalSchedule.SECONDS)  # fmt: skip
    wanted = set()
    for row in deployment.schedules.all():
        name = f"{prefix}{row.pk}"
        wanted.add(name)
        PeriodicTask.objects.update_or_create(name=name, defaults={
            "task": TASK_NAME, "interval": every, "args": json.dumps([row.pk]),
            "enabled": row.active and not deployment.is_paused,
            "description": f"Creates the upcoming runs of {deployment} ({row})",
        })  # fmt: skip
    PeriodicTask.objects.filter(name__startswith=prefix).exclude(name__in=wanted).delete()


def periodic_tasks_delete(deployment_id: object) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name__startswith=f"runway schedule {deployment_id} ").delete()
