"""Read-only queries over runs, states and logs, shaped for the CLI, API and dashboard."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import BooleanField, Count, ExpressionWrapper, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from orchestrator.exceptions import ObjectNotFound
from orchestrator.runs import store
from orchestrator.runs.models import (
    Flow,
    FlowRun,
    FlowRunState,
    Log,
    TaskCacheEntry,
    TaskRun,
    TaskRunState,
)
from orchestrator.schemas import TERMINAL_TYPES, State, StateDetails, StateType


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


def flow_get(*, name: str) -> Flow:
    """One flow by name; the error says how to see the names that exist."""
    try:
        return Flow.objects.get(name=name)
    except Flow.DoesNotExist:
        raise ObjectNotFound(f"flow {name!r} does not exist; list flows with `python manage.py flow ls`") from None


def flow_list_with_last_run() -> QuerySet[Flow]:
    """Flows by name, each with its newest run's `last_run_time`, `last_run_state_type/_name`.

    "Newest" is the latest expected start (every run has one from its first state), as
    in flow_run_list, read from the (flow, expected start) index; the time shown is
    when that run started, or is expected to start if it has not yet.
    """
    newest = FlowRun.objects.filter(flow=OuterRef("pk"), expected_start_time__isnull=False).order_by(
        "-expected_start_time", "-id"
    )
    return flow_list().annotate(
        last_run_time=Subquery(newest.values(when=Coalesce("start_time", "expected_start_time"))[:1]),
        last_run_state_type=Subquery(newest.values("state_type")[:1]),
        last_run_state_name=Subquery(newest.values("state_name")[:1]),
    )


def flow_list_with_run_summary() -> QuerySet[Flow]:
    """flow_list_with_last_run, and each flow's `run_count`."""
    return flow_list_with_last_run().annotate(run_count=Count("runs"))


def flow_run_stats_by_flow(*, since: datetime | None = None) -> dict[UUID, dict[str, int]]:
    """{flow id: {"total", "completed", "finished"}} over the runs expected to start since `since`
    (all runs if None): one grouped pass over the expected-start index, for success rates."""
    runs = FlowRun.objects.all() if since is None else FlowRun.objects.filter(expected_start_time__gte=since)
    rows = runs.order_by().values("flow_id").annotate(
        total=Count("id"),
        completed=Count("id", filter=Q(state_type=StateType.COMPLETED.value)),
        finished=Count("id", filter=Q(state_type__in=[t.value for t in TERMINAL_TYPES])),
    )
    return {row.pop("flow_id"): row for row in rows}


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
    """By full UUID, or by a unique prefix of its hex digits (hyphens optional), using the pk index."""
    text = str(run_id).strip().lower()
    digits = text.replace("-", "")
    if len(digits) >= 4 and all(c in "0123456789abcdef" for c in digits) and len(digits) <= 32:
        low, high = UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))
        matches = list(queryset.filter(pk__gte=low, pk__lte=high)[:2])
        if len(matches) == 1:
            return matches[0]
        hint = "is ambiguous" if matches else "does not exist"
    else:
        hint = "is not a run id (expected a UUID or at least 4 of its first hex digits)"
    noun = label.replace(" ", "-")
    raise ObjectNotFound(f"{label} {run_id!r} {hint}; list them with `python manage.py {noun} ls`")


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
    """("flow"|"task", id, pid) of runs this host had in progress, to find those whose process died;
    not the task runs Celery workers claimed, which their heartbeats watch (and retry)."""
    active = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
    found: list[tuple[str, UUID, int | None]] = []
    for kind, model in (("flow", FlowRun), ("task", TaskRun)):
        # runs a Celery worker (or agent) claimed are watched by heartbeats (orchestrator/runs/claims.py)
        rows = model.objects.filter(state_type__in=active, hostname=hostname, worker="").values_list("id", "pid")
        found += [(kind, run_id, pid) for run_id, pid in rows]
    return found


def with_all_tags(runs: QuerySet, tags: Iterable[str]) -> QuerySet:
    """Runs carrying every tag in `tags`.

    PostgreSQL answers JSON containment itself; SQLite has no containment
    operator for JSON, so each tag becomes an EXISTS over json_each.
    """
    tags = [t for t in tags if t]
    if not tags:
        return runs
    if connection.vendor == "postgresql":
        return runs.filter(tags__contains=tags)
    table = connection.ops.quote_name(runs.model._meta.db_table)
    for tag in tags:
        has_tag = RawSQL(f"EXISTS (SELECT 1 FROM json_each({table}.tags) WHERE json_each.value = %s)", [tag])
        runs = runs.filter(ExpressionWrapper(has_tag, output_field=BooleanField()))
    return runs


def run_counts_by_state(runs: QuerySet) -> dict[str, Any]:
    """{"total", "by_type": {type: n}, "by_name": {name: n}} over `runs`, for the dashboard's counters."""
    rows = runs.order_by().values_list("state_type", "state_name").annotate(n=Count("id"))
    by_type: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for state_type, state_name, n in rows:
        by_type[state_type or "NONE"] = by_type.get(state_type or "NONE", 0) + n
        by_name[state_name or "None"] = by_name.get(state_name or "None", 0) + n
    return {"total": sum(by_type.values()), "by_type": by_type, "by_name": by_name}


def task_run_current_states(*, task_run_ids: Iterable[UUID], final_only: bool = False) -> dict[UUID, State]:
    """The current state (with its result reference) of each of these task runs that has one;
    with final_only, of those whose state is final (what a flow waiting on its runs needs)."""
    runs = TaskRun.objects.filter(id__in=list(task_run_ids), state__isnull=False).select_related("state")
    if final_only:
        runs = runs.filter(state_type__in=[t.value for t in TERMINAL_TYPES])
    return {run.id: state_from_row(run.state) for run in runs.only("id", "state")}


def task_run_final_states_since(*, flow_run_id: UUID, since: datetime | None) -> list[tuple[UUID, State]]:
    """A flow run's task runs whose state is final and was set at or after `since`, oldest first:
    what a flow waiting on runs it sent to workers asks, without naming them all each time."""
    return store.final_task_run_states_since(store.Db(), flow_run_id, _TERMINAL_VALUES, since)


_TERMINAL_VALUES = tuple(t.value for t in TERMINAL_TYPES)
