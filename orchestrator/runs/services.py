"""The only code that creates runs and writes their states and logs.

Every writer (the in-process SDK client, the API, Celery tasks, sweeps) calls
these functions. A state change locks the run row, runs the policy, writes the
state and the run's bookkeeping in one transaction, and returns the answer.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.rules import bookkeeping, policies
from orchestrator.rules.base import OrchestrationContext
from orchestrator.rules.engine import orchestrate
from orchestrator.runs.models import Flow, FlowRun, FlowRunState, Log, TaskRun, TaskRunState
from orchestrator.runs.selectors import state_from_row
from orchestrator.schemas import TERMINAL_TYPES, OrchestrationResult, SetStateStatus, State, StateType

_RUN_FIELDS = [
    "state", "state_type", "state_name", "state_timestamp", "run_count", "start_time",
    "end_time", "total_run_time", "expected_start_time", "next_scheduled_start_time",
]  # fmt: skip


def flow_get_or_create(*, name: str) -> Flow:
    """The flow named `name`, created on first use."""
    if not name or len(name) > 255:
        raise InvalidInput(f"flow name {name!r} must be 1 to 255 characters")
    flow = Flow.objects.filter(name=name).first()
    if flow is None:
        try:
            with transaction.atomic():
                flow = Flow.objects.create(name=name)
        except IntegrityError:  # created concurrently
            flow = Flow.objects.get(name=name)
    return flow


def flow_run_create(
    *, flow_id: UUID, name: str, state: State, parameters: dict[str, Any] | None = None,
    tags: Iterable[str] = (), parent_flow_run_id: UUID | None = None,
    empirical_policy: dict[str, Any] | None = None, idempotency_key: str | None = None,
    hostname: str = "", pid: int | None = None,
) -> tuple[FlowRun, OrchestrationResult]:
    """Create a flow run in its first state (through the flow policy).

    With an idempotency key, a second call returns the run the first one made.
    """  # fmt: skip
    if idempotency_key:
        existing = FlowRun.objects.filter(flow_id=flow_id, idempotency_key=idempotency_key).first()
        if existing:
            return existing, OrchestrationResult(SetStateStatus.ACCEPT, _current_state(existing))
    run = FlowRun(
        id=uuid.uuid4(), flow_id=flow_id, name=name, parameters=parameters or {},
        tags=list(tags), parent_flow_run_id=parent_flow_run_id,
        empirical_policy=empirical_policy or {}, idempotency_key=idempotency_key,
        hostname=hostname, pid=pid,
    )  # fmt: skip
    return run, _create_run(run, state, "flow")


def task_run_create(
    *, flow_run_id: UUID | None, task_key: str, dynamic_key: str, name: str, state: State,
    tags: Iterable[str] = (), empirical_policy: dict[str, Any] | None = None,
    task_inputs: dict[str, Any] | None = None, cache_key: str | None = None,
    hostname: str = "", pid: int | None = None,
) -> tuple[TaskRun, OrchestrationResult]:
    """Create a task run in its first state, or return the one a retried flow already made.

    A task run is identified in its flow run by (task_key, dynamic_key): when a
    flow retries, its tasks find their earlier runs, so Completed ones are not run again.
    """  # fmt: skip
    if flow_run_id is not None:
        existing = (
            TaskRun.objects.select_related("state")
            .filter(flow_run_id=flow_run_id, task_key=task_key, dynamic_key=dynamic_key)
            .first()
        )
        if existing:
            return existing, OrchestrationResult(SetStateStatus.ACCEPT, _current_state(existing))
    run = TaskRun(
        id=uuid.uuid4(), flow_run_id=flow_run_id, task_key=task_key, dynamic_key=dynamic_key,
        name=name, tags=list(tags), empirical_policy=empirical_policy or {},
        task_inputs=task_inputs or {}, cache_key=cache_key, hostname=hostname, pid=pid,
    )  # fmt: skip
    return run, _create_run(run, state, "task")


def flow_run_set_state(*, flow_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
    """Propose `state` for a flow run; the flow policy decides."""
    return _set_state(FlowRun, flow_run_id, state, "flow", force)


def task_run_set_state(*, task_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
    """Propose `state` for a task run; the task policy decides."""
    return _set_state(TaskRun, task_run_id, state, "task", force)


def flow_run_finish_task_runs(*, flow_run_id: UUID, state_type: StateType, message: str) -> int:
    """Move a flow run's unfinished task runs to `state_type` (Crashed or Cancelled); returns how many."""
    open_ids = TaskRun.objects.filter(flow_run_id=flow_run_id).exclude(
        state_type__in=[t.value for t in TERMINAL_TYPES]
    ).values_list("id", flat=True)
    for task_run_id in list(open_ids):
        task_run_set_state(task_run_id=task_run_id, state=State(type=state_type, message=message), force=True)
    return len(open_ids)


def logs_create(*, logs: Iterable[dict[str, Any]]) -> int:
    """Store log lines, in one batch; each needs level, name, message, timestamp and a run id."""
    rows = [Log(**_log_fields(entry)) for entry in logs]
    Log.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def _log_fields(entry: dict[str, Any]) -> dict[str, Any]:
    missing = {"level", "name", "message", "timestamp"} - entry.keys()
    if missing:
        raise InvalidInput(f"log entry lacks {', '.join(sorted(missing))}")
    if not entry.get("flow_run_id") and not entry.get("task_run_id"):
        raise InvalidInput("log entry needs a flow_run_id or a task_run_id")
    return {
        "flow_run_id": entry.get("flow_run_id"),
        "task_run_id": entry.get("task_run_id"),
        "level": int(entry["level"]),
        "name": str(entry["name"])[:255],
        "message": str(entry["message"]),
        "timestamp": entry["timestamp"],
    }


# --- the transaction around one proposal ---------------------------------------------

_POLICIES = {
    ("flow", False): (policies.CORE_FLOW_POLICY, bookkeeping.FLOW_TRANSFORMS),
    ("task", False): (policies.CORE_TASK_POLICY, bookkeeping.TASK_TRANSFORMS),
    ("flow", True): (policies.MINIMAL_POLICY, bookkeeping.FLOW_TRANSFORMS),
    ("task", True): (policies.MINIMAL_POLICY, bookkeeping.TASK_TRANSFORMS),
}
_STATE_MODELS = {"flow": (FlowRunState, "flow_run_id"), "task": (TaskRunState, "task_run_id")}


def _create_run(run: FlowRun | TaskRun, state: State, kind: str) -> OrchestrationResult:
    with transaction.atomic():
        ctx = _context(run, None, state, kind)
        rules, transforms = _POLICIES[(kind, False)]
        orchestrate(ctx, rules, transforms, _write_new_run)
        if not ctx.write:
            raise InvalidInput(f"a new {kind} run cannot start as {state.name}: {ctx.reason}")
    return ctx.result(ctx.proposed)


def _set_state(model: type, run_id: UUID, state: State, kind: str, force: bool) -> OrchestrationResult:
    related = ("state", "flow_run") if kind == "task" else ("state",)
    with transaction.atomic():
        try:
            run = model.objects.select_for_update(of=("self",)).select_related(*related).get(pk=run_id)
        except model.DoesNotExist:
            raise ObjectNotFound(f"{kind} run {run_id} does not exist") from None
        ctx = _context(run, _current_state(run), state.copy(id=None, timestamp=None), kind)
        rules, transforms = _POLICIES[(kind, force)]
        orchestrate(ctx, rules, transforms, _write_state)
    return ctx.result(ctx.proposed)


def _context(run, initial: State | None, proposed: State, kind: str) -> OrchestrationContext:
    return OrchestrationContext(run=run, kind=kind, initial=initial, proposed=proposed, now=timezone.now())


def _current_state(run: FlowRun | TaskRun) -> State | None:
    return state_from_row(run.state) if run.state_id else None


def _state_row(ctx: OrchestrationContext):
    model, run_field = _STATE_MODELS[ctx.kind]
    state = ctx.proposed
    state.id = uuid.uuid4()
    return model(
        id=state.id, type=state.type.value, name=state.name, message=state.message or "",
        timestamp=state.timestamp, details=state.details.to_dict(), result=state.result,
        **{run_field: ctx.run.id},
    )  # fmt: skip


def _apply_state_to_run(ctx: OrchestrationContext, row) -> None:
    run = ctx.run
    run.state = row
    run.state_type, run.state_name, run.state_timestamp = row.type, row.name, row.timestamp


def _write_new_run(ctx: OrchestrationContext) -> None:
    """Insert the run then its first state; the foreign keys are checked at commit."""
    row = _state_row(ctx)
    _apply_state_to_run(ctx, row)
    ctx.run.save(force_insert=True)
    row.save(force_insert=True)


def _write_state(ctx: OrchestrationContext) -> None:
    row = _state_row(ctx)
    row.save(force_insert=True)
    _apply_state_to_run(ctx, row)
    ctx.run.save(update_fields=_RUN_FIELDS + (["flow_run_run_count"] if ctx.kind == "task" else []))
