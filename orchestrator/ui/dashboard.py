"""What the dashboard shows for a filter: counts by state, the run history chart, recent failures,
late runs and each work queue's health. Each part is one query on an indexed column."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from orchestrator.deployments.models import WorkQueue
from orchestrator.runs.models import FlowRun
from orchestrator.runs.selectors import run_counts_by_state
from orchestrator.ui import charts
from orchestrator.ui.filters import STATE_TYPES, RunFilter

HISTORY_LIMIT = 500  # the newest runs drawn in the chart
LIST_LIMIT = 10


def summary(run_filter: RunFilter) -> dict[str, Any]:
    now = timezone.now()
    runs = run_filter.apply(FlowRun.objects.all())
    counts = run_counts_by_state(runs)
    fields = ("id", "name", "state_type", "state_name", "start_time", "end_time", "expected_start_time")
    newest = list(runs.order_by("-expected_start_time", "-id").only(*fields)[:HISTORY_LIMIT])
    start, _ = run_filter.window(now)
    listed = runs.select_related("flow").order_by("-expected_start_time", "-id")
    return {
        "counts": [(t, counts["by_type"].get(t, 0)) for t in STATE_TYPES], "total": counts["total"],
        "history": charts.history(newest, now, start), "history_truncated": counts["total"] > HISTORY_LIMIT,
        "recent": listed.select_related("deployment")[:LIST_LIMIT],
        "failures": listed.filter(state_type__in=["FAILED", "CRASHED"])[:LIST_LIMIT],
        "late": FlowRun.objects.filter(state_name="Late").select_related("flow", "deployment")
                .order_by("next_scheduled_start_time")[:LIST_LIMIT],
        "queues": queue_health(),
    }  # fmt: skip


def queue_health() -> list[dict[str, Any]]:
    """Each work queue with its waiting, running and late runs, and a word for how it is doing."""
    queues = list(WorkQueue.objects.order_by("priority", "name")[:100])
    counts = (FlowRun.objects.filter(work_queue_name__in=[q.name for q in queues],
                                     state_type__in=["SCHEDULED", "PENDING", "RUNNING"])
              .values("work_queue_name").order_by()
              .annotate(late=Count("id", filter=Q(state_name="Late")),
                        pending=Count("id", filter=Q(state_type="PENDING")),
                        running=Count("id", filter=Q(state_type="RUNNING"))))  # fmt: skip
    by_name = {row["work_queue_name"]: row for row in counts}
    health = []
    for queue in queues:
        row = by_name.get(queue.name, {"late": 0, "pending": 0, "running": 0})
        status = "paused" if queue.is_paused else ("late runs" if row["late"] else "healthy")
        health.append({"queue": queue, "status": status, **{k: row[k] for k in ("late", "pending", "running")}})
    return health
