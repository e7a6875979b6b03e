"""Read-only queries over runs, states and logs, shaped for the CLI, API and dashboard."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from django.db.models import Q, QuerySet

from orchestrator.exceptions import ObjectNotFound
from orchestrator.runs.models import (
    Flow,
    FlowRun,
    FlowRunState,
    Log,
    TaskCacheEntry,
    TaskRun,
    TaskRunState,
)
from orchestrator.schemas import State, StateDetails, StateType


def state_from_row(row: FlowRunState | TaskRunState) -> State:
    """The shared schema for a state row."""
    return State(
        id=row.id,
        type=StateType(row.type),
        name=row.name,
        message=row.message or None,
        timestamp=row.timestamp,
        details=StateDetails.from_dict(row.details),
        result=row.result,
    )


def flow_list() -> QuerySet[Flow]:
    return Flow.objects.order_by("name")


def flow_run_list(
    *,
    flow_name: str | None = None,
    state_types: Iterable[str] | None = None,
    state_names: Iterable[str] | None = None,
    parent_flow_run_id: UUID | None = None,
) -> QuerySet[FlowRun]:
    """Flow runs, newest expected start first, filtered by flow, state and parent."""
    runs = FlowRun.objects.select_related("flow").order_by("-expected_start_time", "-id")
    if flow_name:
        runs = runs.filter(flow__name=flow_name)
    if state_types:
        runs = runs.filter(state_type__in=[StateType(t.upper()).value for t in state_types])
    if state_names:
        runs = runs.filter(state_name__in=list(state_names))
    if parent_flow_run_id:
        runs = runs.filter(parent_flow_run_id=parent_flow_run_id)
    return runs


def flow_run_get(*, flow_run_id: UUID | str) -> FlowRun:
    """One flow run by id (or unique id prefix, for the CLI)."""
    return _get_by_id(FlowRun.objects.select_related("flow", "state"), flow_run_id, "flow run")


def task_run_get(*, task_run_id: UUID | str) -> TaskRun:
    return _get_by_id(TaskRun.objects.select_related("state", "flow_run"), task_run_id, "task run")


def _get_by_id(queryset: QuerySet, run_id: UUID | str, label: str):
    text = str(run_id).strip().lower()
    try:
        return queryset.get(pk=UUID(text))
    except (ValueError, queryset.model.DoesNotExist):
        pass
    matches = list(queryset.filter(pk__startswith=text.replace("-", ""))[:2]) if len(text) >= 4 else []
    if len(matches) == 1:
        return matches[0]
    hint = "is ambiguous" if matches else "does not exist"
    raise ObjectNotFound(f"{label} {run_id!r} {hint}; list them with `python manage.py {label.replace(' ', '-')} ls`")


def flow_run_states(*, flow_run_id: UUID) -> QuerySet[FlowRunState]:
    return FlowRunState.objects.filter(flow_run_id=flow_run_id).order_by("timestamp")


def task_run_states(*, task_run_id: UUID) -> QuerySet[TaskRunState]:
    return TaskRunState.objects.filter(task_run_id=task_run_id).order_by("timestamp")


def task_run_list(*, flow_run_id: UUID) -> QuerySet[TaskRun]:
    return TaskRun.objects.filter(flow_run_id=flow_run_id).order_by("expected_start_time", "id")


def log_list(*, flow_run_id: UUID, min_level: int = 0, include_task_runs: bool = True) -> QuerySet[Log]:
    """A flow run's log lines in order; with include_task_runs, its task runs' lines too."""
    where = Q(flow_run_id=flow_run_id)
    if not include_task_runs:
        where &= Q(task_run__isnull=True)
    return Log.objects.filter(where, level__gte=min_level).order_by("timestamp", "id")


def task_cache_lookup(*, cache_key: str, now: datetime) -> TaskCacheEntry | None:
    """The newest unexpired cache entry for `cache_key`."""
    return (
        TaskCacheEntry.objects.select_related("state")
        .filter(cache_key=cache_key)
        .filter(Q(expiration__isnull=True) | Q(expiration__gt=now))
        .order_by("-created")
        .first()
    )


def runs_in_progress_on_host(*, hostname: str) -> list[tuple[str, UUID, int | None]]:
    """("flow"|"task", id, pid) of runs this host had in progress, to find those whose process died."""
    active = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
    found: list[tuple[str, UUID, int | None]] = []
    for kind, model in (("flow", FlowRun), ("task", TaskRun)):
        rows = model.objects.filter(state_type__in=active, hostname=hostname).values_list("id", "pid")
        found += [(kind, run_id, pid) for run_id, pid in rows]
    return found
