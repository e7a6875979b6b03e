"""Reading work queues and deployments for the CLI, API and admin."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from orchestrator.deployments.models import Deployment, DeploymentSchedule, WorkQueue
from orchestrator.deployments.schedules import describe, due_times
from orchestrator.deployments.services import deployment_get, work_queue_get


def work_queue_list() -> QuerySet[WorkQueue]:
    return WorkQueue.objects.annotate(deployment_count=Count("deployments")).order_by("priority", "name")


def work_queue_summary(queue: WorkQueue) -> dict[str, Any]:
    return {"name": queue.name, "priority": queue.priority, "is_paused": queue.is_paused,
            "concurrency_limit": queue.concurrency_limit, "filter_tags": queue.filter_tags,
            "deployment_count": getattr(queue, "deployment_count", None), "updated": queue.updated}  # fmt: skip


def work_queue_detail(*, name: str) -> dict[str, Any]:
    queue = work_queue_get(name=name)
    return {
        **work_queue_summary(queue), "description": queue.description,
        "filter_deployments": [str(d) for d in queue.filter_deployments.select_related("flow")],
        "deployments": [str(d) for d in queue.deployments.select_related("flow")],
    }  # fmt: skip


def work_queue_deployment_ids(queue: WorkQueue) -> list:
    """The deployments whose runs the queue takes: those naming it, and those its filters match
    (tags include all of `filter_tags`; among `filter_deployments`, if it names any)."""
    named = set(queue.deployments.values_list("pk", flat=True))
    chosen = set(queue.filter_deployments.values_list("pk", flat=True))
    if not queue.filter_tags and not chosen:
        return sorted(named)
    candidates = Deployment.objects.filter(pk__in=chosen) if chosen else Deployment.objects.all()
    wanted = set(queue.filter_tags)
    matched = {pk for pk, tags in candidates.values_list("pk", "tags") if wanted <= set(tags or [])}
    return sorted(named | matched)


def work_queue_preview(*, name: str, limit: int = 20, within: timedelta | None = None) -> list[dict[str, Any]]:
    """The Scheduled runs the queue will release next, soonest first; `late` marks those due more than
    RUNWAY_LATE_AFTER_SECONDS ago (or already marked Late)."""
    from django.conf import settings

    from orchestrator.runs.models import FlowRun

    queue = work_queue_get(name=name)
    now = timezone.now()
    runs = FlowRun.objects.filter(deployment_id__in=work_queue_deployment_ids(queue), state_type="SCHEDULED")
    if within is not None:
        runs = runs.filter(next_scheduled_start_time__lte=now + within)
    late_before = now - timedelta(seconds=settings.RUNWAY_LATE_AFTER_SECONDS)
    rows = runs.select_related("deployment__flow").order_by("next_scheduled_start_time", "id")[:limit]
    return [
        {"id": run.id, "name": run.name, "deployment": str(run.deployment), "state_name": run.state_name,
         "scheduled_time": run.next_scheduled_start_time,
         "late": run.state_name == "Late" or (run.next_scheduled_start_time or now) < late_before}
        for run in rows
    ]  # fmt: skip


def deployment_list() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("flow", "work_queue").order_by("flow__name", "name")


def deployment_summary(deployment: Deployment) -> dict[str, Any]:
    return {
        "id": deployment.id, "name": str(deployment), "flow": deployment.flow.name, "deployment": deployment.name,
        "entrypoint": deployment.entrypoint, "source": deployment.source, "work_queue": deployment.work_queue.name,
        "tags": deployment.tags, "is_paused": deployment.is_paused, "version": deployment.version,
        "code_version": deployment.code_version, "updated": deployment.updated,
    }  # fmt: skip


def deployment_detail(*, ref: str, upcoming: int = 3) -> dict[str, Any]:
    deployment = deployment_get(ref=ref)
    return {**deployment_summary(deployment), "description": deployment.description,
            "parameters": deployment.parameters, "parameter_schema": deployment.parameter_schema,
            "code_path": deployment.code_path, "created": deployment.created,
            "schedules": [schedule_summary(s, upcoming) for s in deployment.schedules.all()]}  # fmt: skip


def schedule_summary(row: DeploymentSchedule, upcoming: int = 3) -> dict[str, Any]:
    """A schedule as given, in words, and its next `upcoming` times (UTC; none while it is paused)."""
    schedule = row.as_schedule()
    now = timezone.now()
    next_times = due_times(schedule, now, now + timedelta(days=3660), limit=upcoming) if upcoming else []
    if not row.active or row.deployment.is_paused:
        next_times = []
    return {"id": row.pk, **schedule.to_dict(), "active": row.active, "description": describe(schedule), "next": next_times}
