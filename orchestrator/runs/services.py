"""The only code that creates runs and writes their states and logs.

Every writer (the in-process SDK client, the API, Celery tasks, sweeps) calls
these functions. A state change locks the run row, runs the policy, writes the
state and the run's bookkeeping in one transaction, and returns the answer.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.notifications import triggers as notifications
from orchestrator.rules import bookkeeping, policies
from orchestrator.rules.base import OrchestrationContext
from orchestrator.rules.engine import orchestrate
from orchestrator.runs import events, store
from orchestrator.runs.models import Flow, FlowRun, LogBatch, TaskRun
from orchestrator.runs.selectors import state_from_row
from orchestrator.schemas import TERMINAL_TYPES, OrchestrationResult, SetStateStatus, State, StateType


def friendly_run_name() -> str:
    """A name people can say, for runs made without one: "adjective-animal", as the SDK names its runs."""
    from coolname import generate_slug

    return generate_slug(2)


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
    hostname: str = "", pid: int | None = None, deployment_id: UUID | None = None, work_queue_name: str = "",
    code_version: str = "",
) -> tuple[FlowRun, OrchestrationResult]:
    """Create a flow run in its first state (through the flow policy); a deployment's run names it,
    its work queue and its code version.

    With an idempotency key, a second call returns the run the first one made.
    """  # fmt: skip
    existing = _flow_run_by_key(flow_id, idempotency_key)
    if existing:
        return existing, OrchestrationResult(SetStateStatus.ACCEPT, _current_state(existing))
    fields = {
        "flow_id": flow_id, "parameters": parameters or {}, "tags": list(tags),
        "parent_flow_run_id": parent_flow_run_id, "idempotency_key": idempotency_key, "hostname": hostname,
    }  # fmt: skip
    if deployment_id is not None:
        fields.update(deployment_id=deployment_id, work_queue_name=work_queue_name, code_version=code_version)
    try:
        return _create_run(FlowRun, "flow", name, state, empirical_policy, pid, fields)
    except IntegrityError:  # a concurrent create with the same key won the race
        existing = _flow_run_by_key(flow_id, idempotency_key)
        if existing is None:
            raise
        return existing, OrchestrationResult(SetStateStatus.ACCEPT, _current_state(existing))


def _flow_run_by_key(flow_id: UUID, idempotency_key: str | None) -> FlowRun | None:
    if not idempotency_key:
        return None
    return FlowRun.objects.select_related("state").filter(flow_id=flow_id, idempotency_key=idempotency_key).first()


def task_run_create(
    *, flow_run_id: UUID | None, task_key: str, dynamic_key: str, name: str, state: State,
    tags: Iterable[str] = (), empirical_policy: dict[str, Any] | None = None,
    task_inputs: dict[str, Any] | None = None, cache_key: str | None = None,
    hostname: str = "", pid: int | None = None, run_id: UUID | None = None, then: State | None = None,
) -> tuple[TaskRun, OrchestrationResult]:
    """Create a task run in its first state, or return the one a retried flow already made.

    A task run is identified in its flow run by (task_key, dynamic_key): when a
    flow retries, its tasks find their earlier runs, so Completed ones are not run again.
    With `then`, that state is proposed next in the same transaction and the
    answer is its answer: a task run called directly is created and started with
    one commit, its history still Pending then Running.
    """  # fmt: skip
    fields = _task_run_fields(flow_run_id, task_key, dynamic_key, tags, task_inputs, cache_key, hostname)
    try:
        return _create_run(TaskRun, "task", name, state, empirical_policy, pid, fields, run_id, then)
    except IntegrityError:  # the id or key exists: a retried request, or a retried flow run's earlier task run
        existing = _existing_task_run(run_id, flow_run_id, task_key, dynamic_key)
        if then is not None:
            return existing, task_run_set_state(task_run_id=existing.id, state=then)
        return existing, OrchestrationResult(SetStateStatus.ACCEPT, _current_state(existing))


def task_runs_create(*, runs: Sequence[dict[str, Any]]) -> list[tuple[UUID, OrchestrationResult]]:
    """Create task runs in one transaction: for each, what `task_run_create` does, with one commit.

    Each item holds `task_run_create`'s keyword arguments. Returned, in the items'
    order: each run's id and the answer to its last proposal (`then` if given, else
    its first state); no model instance is built. Runs a retried flow run already
    made under the same keys are found again, as `task_run_create` finds them.
    `task.map()` creates its runs with this, Pending, before any of them starts.
    """
    items = [_task_run_item(index, item) for index, item in enumerate(runs)]
    try:
        return _create_task_runs(items)
    except IntegrityError:  # a key exists: a retried flow run meets its earlier task runs, one by one
        answers = []
        for item in items:
            run, answer = task_run_create(**item)
            answers.append((run.id, answer))
        return answers


def _existing_task_run(run_id: UUID | None, flow_run_id: UUID | None, task_key: str, dynamic_key: str) -> TaskRun:
    """The run a create collided with: the same id (a retried request) or the same key in its flow run."""
    runs = TaskRun.objects.select_related("state")
    same_id = runs.filter(pk=run_id).first() if run_id else None
    if same_id is not None:
        if (same_id.flow_run_id, same_id.task_key, same_id.dynamic_key) != (flow_run_id, task_key, dynamic_key):
            raise InvalidInput(f"task run id {run_id} is already used by another task run; choose a new id")
        return same_id
    existing = runs.filter(flow_run_id=flow_run_id, task_key=task_key, dynamic_key=dynamic_key).first()
    if flow_run_id is None or existing is None:
        raise ObjectNotFound(f"flow run {flow_run_id} does not exist")
    return existing


_TASK_RUN_REQUIRED = ("flow_run_id", "task_key", "dynamic_key", "name", "state")
_TASK_RUN_OPTIONAL = ("tags", "empirical_policy", "task_inputs", "cache_key", "hostname", "pid", "run_id", "then")


def _task_run_item(index: int, item: Any) -> dict[str, Any]:
    """One item of task_runs_create, checked, or InvalidInput naming its position and the problem."""
    if not isinstance(item, dict):
        raise InvalidInput(f"task run {index}: expected a dict of task_run_create's arguments, got {type(item).__name__}")
    missing = [key for key in _TASK_RUN_REQUIRED if key not in item]
    unknown = sorted(item.keys() - {*_TASK_RUN_REQUIRED, *_TASK_RUN_OPTIONAL})
    if missing or unknown:
        problems = [f"lacks {', '.join(missing)}"] if missing else []
        problems += [f"has unknown argument(s) {', '.join(unknown)}"] if unknown else []
        raise InvalidInput(f"task run {index}: {'; '.join(problems)} (see task_run_create for the arguments)")
    for key in ("state", "then"):
        value = item.get(key)
        if (value is not None or key == "state") and not isinstance(value, State):
            raise InvalidInput(f"task run {index}: {key} must be a State, got {value!r}")
    return item


def _create_task_runs(items: list[dict[str, Any]]) -> list[tuple[UUID, OrchestrationResult]]:
    """The batch: every first state through the policy, then the runs and their states inserted.

    A batch of Pending runs (what `.map()` makes) is decided, and its rows made, before
    the write transaction, from its flow runs' states as read then; under the lock the
    flow runs are read again, and only if one changed meanwhile is the batch decided
    again. Why: the rules are Python, and in a flow's process busy dispatcher threads
    make each Python step taken while holding SQLite's write lock wait for the GIL,
    while every worker waits for the lock (a batch of 500 held it for 130 ms).
    """
    db = store.Db()
    flow_run_ids = {item["flow_run_id"] for item in items} - {None}
    early = None
    if all(item["state"].type == StateType.PENDING for item in items):  # a Pending start reads and writes nothing else
        summaries = _flow_run_summaries(db, flow_run_ids)
        early = summaries, _first_states(db, items, summaries)
    with transaction.atomic():
        summaries = _flow_run_summaries(db, flow_run_ids)
        created, rows = early[1] if early and early[0] == summaries else _first_states(db, items, summaries)
        for table_rows in rows:
            store.insert(db, table_rows)
        rules, transforms = _POLICIES[("task", False)]
        answers = []
        for ctx, item in zip(created, items):
            if item.get("then") is not None:
                ctx = _context(ctx.run, ctx.proposed, _fresh(item["then"]), "task")
                orchestrate(ctx, rules, transforms, lambda c: _write_state(db, c))
            answers.append((ctx.run.id, ctx.result(ctx.proposed)))
    return answers


def _first_states(db: store.Db, items: list[dict[str, Any]], flow_runs: dict[UUID, store.FlowRunSummary],
                  ) -> tuple[list[OrchestrationContext], list[store.Rows]]:  # fmt: skip
    """Each new run's first state as the policy decides it, and the rows of the runs and states."""
    rules, transforms = _POLICIES[("task", False)]
    created = []
    for index, item in enumerate(items):
        run = store.RunRow(id=item.get("run_id") or uuid.uuid4(), name=item["name"],
                           empirical_policy=item.get("empirical_policy") or {}, pid=item.get("pid"),
                           tags=list(item.get("tags") or ()))  # fmt: skip
        if item["flow_run_id"] is not None:
            run.flow_run_id, run.flow_run = item["flow_run_id"], flow_runs[item["flow_run_id"]]
        ctx = _context(run, None, _fresh(item["state"]), "task")
        orchestrate(ctx, rules, transforms, _new_state_id)
        if not ctx.write:
            raise InvalidInput(f"task run {index} ({item['name']!r}): a new task run cannot start as {item['state'].name}: {ctx.reason}")
        created.append(ctx)
    runs = store.new_runs(db, "task", [(ctx.run, ctx.proposed, _item_fields(item)) for ctx, item in zip(created, items)])
    return created, [runs, store.new_states(db, "task", [(ctx.run.id, ctx.proposed) for ctx in created])]


def _flow_run_summaries(db: store.Db, flow_run_ids: set[UUID]) -> dict[UUID, store.FlowRunSummary]:
    summaries = {}
    for flow_run_id in flow_run_ids:
        summary = store.flow_run_summary(db, flow_run_id)
        if summary is None:
            raise ObjectNotFound(f"flow run {flow_run_id} does not exist")
        summaries[flow_run_id] = summary
    return summaries


def _item_fields(item: dict[str, Any]) -> dict[str, Any]:
    return _task_run_fields(
        item["flow_run_id"], item["task_key"], item["dynamic_key"], item.get("tags", ()),
        item.get("task_inputs"), item.get("cache_key"), item.get("hostname", ""),
    )  # fmt: skip


def _task_run_fields(
    flow_run_id: UUID | None, task_key: str, dynamic_key: str, tags: Iterable[str],
    task_inputs: dict[str, Any] | None, cache_key: str | None, hostname: str,
) -> dict[str, Any]:  # fmt: skip
    """The columns of a new task run besides its state and bookkeeping (the same keys for every run)."""
    return {
        "flow_run_id": flow_run_id, "task_key": task_key, "dynamic_key": dynamic_key, "tags": list(tags),
        "task_inputs": task_inputs or {}, "cache_key": cache_key, "hostname": hostname,
    }  # fmt: skip


def flow_run_set_state(*, flow_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
    """Propose `state` for a flow run; the flow policy decides."""
    return _set_state("flow", flow_run_id, state, force)


def task_run_set_state(*, task_run_id: UUID, state: State, force: bool = False, savepoint: bool = True) -> OrchestrationResult:
    """Propose `state` for a task run; the task policy decides.

    Inside a caller's transaction the proposal is a savepoint, so that its failure undoes only
    itself; `savepoint=False` spares the two statements when the caller's transaction fails as a
    whole anyway (a worker's claim and start: orchestrator/runs/claims.py)."""
    return _set_state("task", task_run_id, state, force, savepoint)


def task_run_set_name(*, task_run_id: UUID, name: str) -> None:
    """Rename a task run: a task_run_name made from upstream results is known only once they are."""
    _set_name(TaskRun, "task", task_run_id, name)


def flow_run_set_name(*, flow_run_id: UUID, name: str) -> None:
    """Rename a flow run: its flow_run_name is made in the run's context, from its final parameters."""
    _set_name(FlowRun, "flow", flow_run_id, name)


def _set_name(model: type, kind: str, run_id: UUID, name: str) -> None:
    if not name or len(name) > 255:
        raise InvalidInput(f"a {kind} run's name must be 1 to 255 characters, got {len(name)}")
    if not model.objects.filter(pk=run_id).update(name=name):
        raise ObjectNotFound(f"{kind} run {run_id} does not exist")


def flow_run_cancel(*, flow_run_id: UUID, by: str = "") -> OrchestrationResult:
    """Cancel a flow run on someone's request: one that has not started is Cancelled at once; one
    running goes Cancelling, for whoever runs it to stop it. A finished run is left as it is."""
    run = FlowRun.objects.filter(pk=flow_run_id).values("state_type", "state_name", "name").first()
    if run is None:
        raise ObjectNotFound(f"flow run {flow_run_id} does not exist")
    if run["state_type"] in {t.value for t in TERMINAL_TYPES}:
        raise InvalidInput(f"flow run {run['name']!r} is already {run['state_name']}: only a run that has not "
                           "finished can be cancelled")  # fmt: skip
    started = run["state_type"] in (StateType.RUNNING.value, StateType.CANCELLING.value)
    target = StateType.CANCELLING if started else StateType.CANCELLED
    message = f"Cancelled by {by}" if by else "Cancelled on request"
    return flow_run_set_state(flow_run_id=flow_run_id, state=State(target, message=message), force=True)


def flow_run_finish_task_runs(
    *, flow_run_id: UUID, state_type: StateType, message: str, only: Iterable[StateType] | None = None
) -> int:
    """Move a flow run's unfinished task runs (or those in `only`) to `state_type`; returns how many."""
    runs = TaskRun.objects.filter(flow_run_id=flow_run_id)
    if only is not None:
        runs = runs.filter(state_type__in=[t.value for t in only])
    else:
        runs = runs.exclude(state_type__in=[t.value for t in TERMINAL_TYPES])
    open_ids = runs.values_list("id", flat=True)
    for task_run_id in list(open_ids):
        task_run_set_state(task_run_id=task_run_id, state=State(type=state_type, message=message), force=True)
    return len(open_ids)


def logs_create(*, logs: Iterable[dict[str, Any]], batch_key: str | None = None) -> int:
    """Store log lines, in one batch; each needs level, name, message, timestamp and a run id.

    With a batch key, a batch already stored under that key is not stored again
    (a retried request); returns how many lines were stored now.
    """
    db = store.Db()
    rows = store.new_logs(db, [_log_fields(entry) for entry in logs])  # made before the write lock is taken
    with transaction.atomic():
        if batch_key is not None:
            if len(batch_key) > 64:
                raise InvalidInput(f"log batch key {batch_key[:80]!r} is longer than 64 characters")
            try:
                with transaction.atomic():
                    LogBatch.objects.create(key=batch_key)
            except IntegrityError:
                return 0
        store.insert(db, rows)
        events.nudge_after_commit()
    return len(rows.values)


def log_batches_prune(*, older_than: timedelta) -> int:
    """Forget the keys of log batches stored longer than `older_than` ago; returns how many.
    A key only guards a retry of its own batch, which comes within a client's retry window
    (minutes), and every batch adds one: kept forever, they would outgrow the logs' own index."""
    return LogBatch.objects.filter(created__lt=timezone.now() - older_than).delete()[0]


def _log_fields(entry: dict[str, Any]) -> dict[str, Any]:
    missing = {"level", "name", "message", "timestamp"} - entry.keys()
    if missing:
        raise InvalidInput(f"log entry lacks {', '.join(sorted(missing))}")
    if not entry.get("flow_run_id") and not entry.get("task_run_id"):
        raise InvalidInput("log entry needs a flow_run_id or a task_run_id")
    return {
        "flow_run_id": _as_uuid(entry.get("flow_run_id"), "flow_run_id"),
        "task_run_id": _as_uuid(entry.get("task_run_id"), "task_run_id"),
        "level": int(entry["level"]),
        "name": str(entry["name"])[:255],
        "message": str(entry["message"]),
        "timestamp": _as_datetime(entry["timestamp"]),
    }


def _as_datetime(value: Any) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(parsed, datetime) or parsed.tzinfo is None:
        raise InvalidInput(f"log entry timestamp {value!r} is not a date and time with a time zone")
    return parsed


def _as_uuid(value: Any, name: str) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(f"log entry {name} {value!r} is not a UUID") from None


# --- the transaction around one proposal ---------------------------------------------

_POLICIES = {
    ("flow", False): (policies.CORE_FLOW_POLICY, bookkeeping.FLOW_TRANSFORMS),
    ("task", False): (policies.CORE_TASK_POLICY, bookkeeping.TASK_TRANSFORMS),
    ("flow", True): (policies.MINIMAL_FLOW_POLICY, bookkeeping.FLOW_TRANSFORMS),
    ("task", True): (policies.MINIMAL_TASK_POLICY, bookkeeping.TASK_TRANSFORMS),
}


def _create_run(
    model: type, kind: str, name: str, state: State, policy: dict[str, Any] | None, pid: int | None,
    fields: dict[str, Any], run_id: UUID | None = None, then: State | None = None,
) -> tuple[FlowRun | TaskRun, OrchestrationResult]:  # fmt: skip
    run = store.RunRow(id=run_id or uuid.uuid4(), name=name, empirical_policy=policy or {}, pid=pid,
                       tags=list(fields.get("tags") or ()))  # fmt: skip
    rules, transforms = _POLICIES[(kind, False)]
    with transaction.atomic():
        db = store.Db()
        if fields.get("flow_run_id") is not None:  # the task rules read the state of the flow run
            run.flow_run_id = fields["flow_run_id"]
            run.flow_run = store.flow_run_summary(db, run.flow_run_id)
        ctx = _context(run, None, _fresh(state), kind)
        orchestrate(ctx, rules, transforms, lambda c: _write_new_run(db, c, fields))
        if not ctx.write:
            raise InvalidInput(f"a new {kind} run cannot start as {state.name}: {ctx.reason}")
        first = ctx.proposed
        if then is not None:
            ctx = _context(run, first, _fresh(then), kind)
            orchestrate(ctx, rules, transforms, lambda c: _write_state(db, c))
        if kind == "flow":  # the rules watching this state record their deliveries in this transaction
            notifications.flow_run_state_written(flow_run_id=run.id, state=first)
    return _model_instance(model, run, first, fields), ctx.result(ctx.proposed)


def _model_instance(model: type, run: store.RunRow, state: State, fields: dict[str, Any]) -> FlowRun | TaskRun:
    """The created run as a model instance, built without a query (callers mostly need its id)."""
    instance = model(
        id=run.id, name=run.name, empirical_policy=run.empirical_policy, pid=run.pid, state_id=state.id,
        state_type=state.type.value, state_name=state.name, state_timestamp=state.timestamp,
        run_count=run.run_count, start_time=run.start_time, expected_start_time=run.expected_start_time,
        next_scheduled_start_time=run.next_scheduled_start_time, **fields,
    )  # fmt: skip
    instance._state.adding = False
    instance._state.db = "default"
    return instance


def _set_state(kind: str, run_id: UUID, state: State, force: bool, savepoint: bool = True) -> OrchestrationResult:
    with transaction.atomic(savepoint=savepoint):
        db = store.Db()
        loaded = store.load_run_for_update(db, kind, run_id)
        if loaded is None:
            raise ObjectNotFound(f"{kind} run {run_id} does not exist")
        run, current = loaded
        ctx = _context(run, current, _fresh(state), kind)
        rules, transforms = _POLICIES[(kind, force)]
        orchestrate(ctx, rules, transforms, lambda c: _write_state(db, c))
        events.nudge_after_commit()
        if kind == "flow" and ctx.write:  # the rules watching this state record their deliveries in this transaction
            notifications.flow_run_state_written(flow_run_id=run_id, state=ctx.proposed)
    return ctx.result(ctx.proposed)


def _fresh(state: State) -> State:
    """The proposal as the rules may change it, leaving the caller's object as it was."""
    return state.copy(id=None, timestamp=None, details=state.details.copy())


def _context(run: store.RunRow, initial: State | None, proposed: State, kind: str) -> OrchestrationContext:
    return OrchestrationContext(run=run, kind=kind, initial=initial, proposed=proposed, now=timezone.now())


def _current_state(run: FlowRun | TaskRun) -> State | None:
    return state_from_row(run.state) if run.state_id else None


def _new_state_id(ctx: OrchestrationContext) -> None:
    """The write step of a batch: the state gets its id; the rows are inserted together afterwards."""
    ctx.proposed.id = uuid.uuid4()


def _write_new_run(db: store.Db, ctx: OrchestrationContext, fields: dict[str, Any]) -> None:
    ctx.proposed.id = uuid.uuid4()
    store.insert_run(db, ctx.kind, ctx.run, ctx.proposed, fields)
    store.insert_state(db, ctx.kind, ctx.run.id, ctx.proposed)


def _write_state(db: store.Db, ctx: OrchestrationContext) -> None:
    ctx.proposed.id = uuid.uuid4()
    store.insert_state(db, ctx.kind, ctx.run.id, ctx.proposed)
    store.update_run(db, ctx.kind, ctx.run, ctx.proposed)
