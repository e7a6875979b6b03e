"""Reading limits with the runs holding their slots, for the CLI, API and admin."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from orchestrator.limits.models import ConcurrencyLimit
from orchestrator.limits.services import concurrency_limit_get
from orchestrator.schemas import StateType

_RUNNING = Q(slots__task_run__state_type=StateType.RUNNING.value)


def limit_list() -> QuerySet[ConcurrencyLimit]:
    """Limits by tag, each with `active_count`: the slots held by runs still Running."""
    return ConcurrencyLimit.objects.annotate(active_count=Count("slots", filter=_RUNNING)).order_by("tag")


def limit_detail(*, tag: str) -> dict[str, Any]:
    """One limit and the task runs holding its slots, oldest first."""
    limit = concurrency_limit_get(tag=tag)
    slots = (limit.slots.filter(task_run__state_type=StateType.RUNNING.value)
             .select_related("task_run").order_by("acquired"))  # fmt: skip
    return {
        **limit_summary(limit, active_count=len(slots)),
        "active_slots": [
            {"task_run_id": slot.task_run_id, "task_run_name": slot.task_run.name,
             "flow_run_id": slot.task_run.flow_run_id, "acquired": slot.acquired}
            for slot in slots
        ],
    }  # fmt: skip


def limit_summary(limit: ConcurrencyLimit, *, active_count: int | None = None) -> dict[str, Any]:
    count = getattr(limit, "active_count", None) if active_count is None else active_count
    return {"tag": limit.tag, "concurrency_limit": limit.concurrency_limit, "active_count": count,
            "created": limit.created, "updated": limit.updated}  # fmt: skip
