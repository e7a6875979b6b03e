"""Creating and changing work queues and deployments. Loading a flow's code (to check parameters
against its signature and copy it into storage) is the SDK's part (sdk/deployments.py): what
arrives here is already a snapshot, named by its directory and content hash."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.deployments import scheduling
from orchestrator.deployments.models import DEFAULT_QUEUE, Deployment, DeploymentSchedule, WorkQueue
from orchestrator.deployments.schedules import schedule_from
from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_get_or_create, flow_run_create, flow_run_set_state, friendly_run_name
from orchestrator.schemas import State, StateDetails, StateType

MAX_INT = 2**31 - 1  # what the integer columns hold
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")


# --- work queues ---------------------------------------------------------------------------
def work_queue_create(*, name: str, description: str = "", tags: Iterable[str] = (), deployments: Iterable[str] = (),
                      concurrency_limit: int | None = None, priority: int = 1, paused: bool = False) -> WorkQueue:  # fmt: skip
    """A new work queue; `deployments` are "flow/deployment" names its filter admits."""
    name = _queue_name(name)
    if WorkQueue.objects.filter(name=name).exists():
        raise InvalidInput(f"work queue {name!r} already exists; see it with `python manage.py work-queue inspect {name}`")
    _check_limit(concurrency_limit)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= MAX_INT:
        raise InvalidInput(f"priority must be a whole number of 1 or more (1 is served first), not {priority!r}")
    try:
        chosen = [deployment_get(ref=ref) for ref in deployments]
    except ObjectNotFound as exc:  # a bad value in the request, not a missing page
        raise InvalidInput(f"filter: {exc}") from None
    try:
        with transaction.atomic():
            queue = WorkQueue.objects.create(
                name=name, description=description, filter_tags=_tags(tags), is_paused=paused,
                concurrency_limit=concurrency_limit, priority=priority,
            )  # fmt: skip
            queue.filter_deployments.set(chosen)
    except IntegrityError:  # created by someone else meanwhile
        raise InvalidInput(f"work queue {name!r} already exists") from None
    return queue


def work_queue_get(*, name: str) -> WorkQueue:
    try:
        return WorkQueue.objects.get(name=name)
    except WorkQueue.DoesNotExist:
        raise ObjectNotFound(f"work queue {name!r} does not exist; create it with "
                             f"`python manage.py work-queue create {name}` or list them with `work-queue ls`") from None  # fmt: skip


def work_queue_set_paused(*, name: str, paused: bool) -> WorkQueue:
    """A paused queue releases no run until it is resumed; runs already released go on."""
    queue = work_queue_get(name=name)
    queue.is_paused = paused
    queue.save(update_fields=["is_paused", "updated"])
    return queue


def work_queue_set_concurrency_limit(*, name: str, limit: int | None) -> WorkQueue:
    """At most `limit` of the queue's flow runs running at once (None: no limit)."""
    _check_limit(limit)
    queue = work_queue_get(name=name)
    queue.concurrency_limit = limit
    queue.save(update_fields=["concurrency_limit", "updated"])
    return queue


def work_queue_delete(*, name: str) -> None:
    """Delete a queue no deployment uses."""
    queue = work_queue_get(name=name)
    users = [str(d) for d in queue.deployments.select_related("flow")[:5]]
    if users:
        raise InvalidInput(f"work queue {name!r} is used by deployment(s) {', '.join(users)}; "
                           "move or delete them first")  # fmt: skip
    queue.delete()


def _queue_name(name: str) -> str:
    name = (name or "").strip()
    if not _QUEUE_NAME.fullmatch(name):
        raise InvalidInput(f"work queue name {name!r} is not valid: use letters, digits and - _ . : "
                           "(it is also the name of a Celery queue), at most 200 characters")  # fmt: skip
    return name


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_INT):
        raise InvalidInput(f"a work queue's concurrency limit must be a whole number from 0 to {MAX_INT}, not {limit!r}")


def _tags(tags: Iterable[str]) -> list[str]:
    cleaned = sorted({str(tag).strip() for tag in tags if str(tag).strip()})
    too_long = [tag for tag in cleaned if len(tag) > 255]
    if too_long:
        raise InvalidInput(f"tag {too_long[0][:40]!r}... is longer than 255 characters")
    return cleaned


# --- deployments ---------------------------------------------------------------------------
def deployment_create(
    *, flow_name: str, name: str, entrypoint: str, code_path: str, code_version: str,
    parameters: dict[str, Any] | None = None, parameter_schema: dict[str, Any] | None = None,
    tags: Iterable[str] = (), description: str = "", version: str = "", work_queue_name: str | None = None,
    paused: bool = False, source: str = "", schedules: Iterable[dict[str, Any]] = (),
    empirical_policy: dict[str, Any] | None = None,
) -> tuple[Deployment, bool]:  # fmt: skip
    """Create the deployment `flow_name/name`, or deploy it again (same name: its code, defaults,
    settings and schedules are replaced, its runs kept); returns (deployment, created).

    `schedules` are dicts such as {"cron": "0 9 * * *", "timezone": "Europe/Paris"}
    (orchestrator/deployments/schedules.py); a malformed one is refused, saying what is wrong.
    `empirical_policy` ({"retries", "retry_delay"}) applies to its runs. Deploying again replaces
    the schedules' upcoming runs with those of the new schedules."""
    name = _deployment_name(name)
    parameters = dict(parameters or {})
    check_parameters(parameters, parameter_schema or {}, f"{flow_name}/{name}")
    checked = [schedule_from(spec) for spec in schedules]
    missing = [p for p in (parameter_schema or {}).get("required", []) if p not in parameters]
    if checked and missing:
        raise InvalidInput(f"deployment {flow_name}/{name}: its schedule would start runs without the required "
                           f"parameter(s) {', '.join(map(repr, missing))}; give them defaults (--param KEY=VALUE)")  # fmt: skip
    queue = _queue_for(work_queue_name)
    flow = flow_get_or_create(name=flow_name)
    fields = dict(
        entrypoint=entrypoint, code_path=code_path, code_version=code_version, parameters=parameters,
        parameter_schema=parameter_schema or {}, tags=_tags(tags), description=description or "",
        version=version or "", work_queue=queue, is_paused=paused, source=source or "",
        empirical_policy=_policy(empirical_policy),
    )  # fmt: skip
    with transaction.atomic():
        deployment, created = Deployment.objects.update_or_create(flow=flow, name=name, defaults=fields)
        deployment.schedules.all().delete()
        DeploymentSchedule.objects.bulk_create([
            DeploymentSchedule(deployment=deployment, kind=s.kind, cron=s.cron, timezone=s.timezone,
                               interval_seconds=s.interval_seconds, anchor_date=s.anchor_date, rrule=s.rrule)
            for s in checked
        ])  # fmt: skip
        scheduling.future_runs_delete(deployment)
        scheduling.periodic_tasks_sync(deployment)
    scheduling.deployment_runs_create(deployment)
    return deployment, created


def deployment_get(*, ref: str) -> Deployment:
    """A deployment by "flow/deployment" name or by id."""
    flow_name, sep, name = str(ref).rpartition("/")
    found = Deployment.objects.select_related("flow", "work_queue")
    if sep:
        deployment = found.filter(flow__name=flow_name, name=name).first()
    else:
        deployment = found.filter(pk=_uuid(ref)).first() if _uuid(ref) else None
    if deployment is None:
        raise ObjectNotFound(f"deployment {ref!r} does not exist; name it as flow/deployment "
                             "(list them with `python manage.py deployment ls`)")  # fmt: skip
    return deployment


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None


def deployment_run_create(*, ref: str, parameters: dict[str, Any] | None = None, scheduled_time: datetime | None = None,
                          idempotency_key: str | None = None, name: str | None = None,
                          parent_flow_run_id: uuid.UUID | None = None) -> FlowRun:  # fmt: skip
    """A Scheduled run of the deployment, due at `scheduled_time` (now by default), with its defaults
    overridden by `parameters`; its work queue releases it to an agent. With an idempotency key, the
    same key returns the run it made (a schedule's slot is created once). A run started from
    inside a flow run (`run_deployment`) names it as its parent: it shows as a subflow run."""
    deployment = deployment_get(ref=ref)
    if parent_flow_run_id is not None and not FlowRun.objects.filter(pk=parent_flow_run_id).exists():
        raise InvalidInput(f"parent flow run {parent_flow_run_id} does not exist")
    merged = {**deployment.parameters, **(parameters or {})}
    label = str(deployment)
    check_parameters(merged, deployment.parameter_schema, label)
    missing = [p for p in deployment.parameter_schema.get("required", []) if p not in merged]
    if missing:
        raise InvalidInput(f"deployment {label}: missing parameter(s) {', '.join(map(repr, missing))}, which the "
                           "flow requires and the deployment has no default for")  # fmt: skip
    when = scheduled_time or timezone.now()
    state = State(StateType.SCHEDULED, details=StateDetails(scheduled_time=when))
    run, _ = flow_run_create(
        flow_id=deployment.flow_id, name=name or friendly_run_name(), state=state, parameters=merged,
        tags=deployment.tags, idempotency_key=idempotency_key, deployment_id=deployment.id,
        work_queue_name=deployment.work_queue.name, code_version=deployment.code_version,
        empirical_policy=deployment.empirical_policy, parent_flow_run_id=parent_flow_run_id,
    )  # fmt: skip
    return run


def deployment_run_retry(*, flow_run_id: uuid.UUID, by: str = "") -> FlowRun:
    """Run a finished deployment run again, as the same run: it waits for an agent (AwaitingRetry)
    and its queue releases it at once. A run that is not a deployment's has no code to run again."""
    with transaction.atomic():
        run = FlowRun.objects.select_for_update().filter(pk=flow_run_id).first()
        if run is None:
            raise ObjectNotFound(f"flow run {flow_run_id} does not exist")
        if run.deployment_id is None:
            raise InvalidInput(f"flow run {run.name!r} is not a deployment's run: run its flow again instead")
        if run.state_type not in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED, StateType.COMPLETED):
            raise InvalidInput(f"flow run {run.name!r} is {run.state_name}: only a finished run can be retried")
        FlowRun.objects.filter(pk=run.pk).update(worker="", heartbeat=None)
        message = f"Retried by {by}" if by else "Retried on request"
        state = State(StateType.SCHEDULED, name="AwaitingRetry", message=message,
                      details=StateDetails(scheduled_time=timezone.now()))  # fmt: skip
        flow_run_set_state(flow_run_id=run.pk, state=state, force=True)
    run.refresh_from_db()
    return run


def deployment_set_paused(*, ref: str, paused: bool) -> Deployment:
    """A paused deployment gets no new scheduled runs, and those its schedules made and that have not
    started are removed; resumed, its schedules' upcoming runs are made again at once."""
    with transaction.atomic():
        deployment = deployment_get(ref=ref)
        Deployment.objects.select_for_update().filter(pk=deployment.pk).update(is_paused=paused, updated=timezone.now())
        deployment.is_paused = paused
        if paused:
            scheduling.future_runs_delete(deployment)
        scheduling.periodic_tasks_sync(deployment)
    if not paused:
        scheduling.deployment_runs_create(deployment)
    return deployment


def deployment_schedule_set_active(*, ref: str, active: bool, schedule_id: int | None = None) -> Deployment:
    """Pause (or resume) one schedule of the deployment, or all of them. A paused schedule makes no
    new runs, and the upcoming runs are made again from the schedules still active."""
    with transaction.atomic():
        deployment = deployment_get(ref=ref)
        Deployment.objects.select_for_update().filter(pk=deployment.pk).first()  # not while beat makes its runs
        rows = deployment.schedules.all()
        if schedule_id is not None:
            known = list(rows.values_list("pk", flat=True))
            if schedule_id not in known:
                raise InvalidInput(f"deployment {deployment} has no schedule {schedule_id}; its schedules: "
                                   f"{', '.join(map(str, known)) or 'none'} (see `deployment inspect {deployment}`)")  # fmt: skip
            rows = rows.filter(pk=schedule_id)
        rows.update(active=active)
        if not active:
            scheduling.future_runs_delete(deployment)
        scheduling.periodic_tasks_sync(deployment)
    scheduling.deployment_runs_create(deployment)
    return deployment


def deployment_delete(*, ref: str) -> None:
    """Delete the deployment and its upcoming scheduled runs; its runs that are waiting for an agent
    are Cancelled (nothing could run them any more); its other runs stay, no longer linked to it."""
    deployment = deployment_get(ref=ref)
    with transaction.atomic():
        scheduling.future_runs_delete(deployment)
        scheduling.periodic_tasks_delete(deployment.pk)
        waiting = FlowRun.objects.filter(deployment=deployment, worker="",
                                         state_type__in=(StateType.SCHEDULED, StateType.PENDING))  # fmt: skip
        for run_id in list(waiting.values_list("pk", flat=True)):
            gone = State(StateType.CANCELLED, message=f"Its deployment {deployment} was deleted before it ran")
            flow_run_set_state(flow_run_id=run_id, state=gone, force=True)
        deployment.delete()


def _queue_for(name: str | None) -> WorkQueue:
    """The named queue, which must exist; the default queue is made on first use, as in Prefect."""
    if not name or name == DEFAULT_QUEUE:
        queue, _ = WorkQueue.objects.get_or_create(name=DEFAULT_QUEUE)
        return queue
    return work_queue_get(name=name)


def _policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    """A deployment's retry policy: {"retries": n, "retry_delay": seconds}, checked."""
    policy = dict(policy or {})
    unknown = set(policy) - {"retries", "retry_delay"}
    if unknown:
        raise InvalidInput(f"empirical_policy: unknown key(s) {', '.join(sorted(unknown))}; use retries and retry_delay")
    retries, delay = policy.get("retries", 0), policy.get("retry_delay", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_INT:
        raise InvalidInput(f"empirical_policy: retries must be a whole number of 0 or more, not {retries!r}")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 10**7:
        raise InvalidInput(f"empirical_policy: retry_delay must be a number of seconds of 0 or more, not {delay!r}")
    return {"retries": retries, "retry_delay": delay}


def _deployment_name(name: str) -> str:
    name = (name or "").strip()
    if not name or "/" in name or len(name) > 255:
        raise InvalidInput(f"deployment name {name!r} is not valid: a non-empty name without '/', "
                           "at most 255 characters")  # fmt: skip
    return name


def check_parameters(parameters: dict[str, Any], schema: dict[str, Any], label: str) -> None:
    """Default parameters must name the flow's parameters (the SDK checks their types against the code)."""
    properties = schema.get("properties")
    if properties is None or schema.get("additionalProperties") is True:
        return
    unknown = sorted(set(parameters) - set(properties))
    if unknown:
        raise InvalidInput(f"deployment {label}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                           f"the flow takes: {', '.join(properties) or 'no parameters'}")  # fmt: skip
