"""Creating and changing work queues and deployments. Loading a flow's code (to check parameters
against its signature and copy it into storage) is the SDK's part (sdk/deployments.py): what
arrives here is already a snapshot, named by its directory and content hash."""
from __future__ import annotations

import re
import uuid
from datetime import datetime
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.deployments.models import DEFAULT_QUEUE, Deployment, DeploymentSchedule, WorkQueue
from orchestrator.deployments.schedules import schedule_from
from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_get_or_create, flow_run_create, friendly_run_name
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
) -> tuple[Deployment, bool]:  # fmt: skip
    """Create the deployment `flow_name/name`, or deploy it again (same name: its code, defaults,
    settings and schedules are replaced, its runs kept); returns (deployment, created).

    `schedules` are dicts such as {"cron": "0 9 * * *", "timezone": "Europe/Paris"}
    (orchestrator/deployments/schedules.py); a malformed one is refused, saying what is wrong."""
    name = _deployment_name(name)
    parameters = dict(parameters or {})
    _check_parameters(parameters, parameter_schema or {}, f"{flow_name}/{name}")
    checked = [schedule_from(spec) for spec in schedules]
    queue = _queue_for(work_queue_name)
    flow = flow_get_or_create(name=flow_name)
    fields = dict(
        entrypoint=entrypoint, code_path=code_path, code_version=code_version, parameters=parameters,
        parameter_schema=parameter_schema or {}, tags=_tags(tags), description=description or "",
        version=version or "", work_queue=queue, is_paused=paused, source=source or "",
    )  # fmt: skip
    with transaction.atomic():
        deployment, created = Deployment.objects.update_or_create(flow=flow, name=name, defaults=fields)
        deployment.schedules.all().delete()
        DeploymentSchedule.objects.bulk_create([
            DeploymentSchedule(deployment=deployment, kind=s.kind, cron=s.cron, timezone=s.timezone,
                               interval_seconds=s.interval_seconds, anchor_date=s.anchor_date, rrule=s.rrule)
            for s in checked
        ])  # fmt: skip
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
                          idempotency_key: str | None = None, name: str | None = None) -> FlowRun:  # fmt: skip
    """A Scheduled run of the deployment, due at `scheduled_time` (now by default), with its defaults
    overridden by `parameters`; its work queue releases it to an agent. With an idempotency key, the
    same key returns the run it made (a schedule's slot is created once)."""
    deployment = deployment_get(ref=ref)
    merged = {**deployment.parameters, **(parameters or {})}
    label = str(deployment)
    _check_parameters(merged, deployment.parameter_schema, label)
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
    )  # fmt: skip
    return run


def deployment_set_paused(*, ref: str, paused: bool) -> Deployment:
    """A paused deployment gets no new scheduled runs."""
    deployment = deployment_get(ref=ref)
    deployment.is_paused = paused
    deployment.save(update_fields=["is_paused", "updated"])
    return deployment


def deployment_delete(*, ref: str) -> None:
    """Delete the deployment; its past runs stay, no longer linked to it."""
    deployment_get(ref=ref).delete()


def _queue_for(name: str | None) -> WorkQueue:
    """The named queue, which must exist; the default queue is made on first use, as in Prefect."""
    if not name or name == DEFAULT_QUEUE:
        queue, _ = WorkQueue.objects.get_or_create(name=DEFAULT_QUEUE)
        return queue
    return work_queue_get(name=name)


def _deployment_name(name: str) -> str:
    name = (name or "").strip()
    if not name or "/" in name or len(name) > 255:
        raise InvalidInput(f"deployment name {name!r} is not valid: a non-empty name without '/', "
                           "at most 255 characters")  # fmt: skip
    return name


def _check_parameters(parameters: dict[str, Any], schema: dict[str, Any], label: str) -> None:
    """Default parameters must name the flow's parameters (the SDK checks their types against the code)."""
    properties = schema.get("properties")
    if properties is None or schema.get("additionalProperties") is True:
        return
    unknown = sorted(set(parameters) - set(properties))
    if unknown:
        raise InvalidInput(f"deployment {label}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                           f"the flow takes: {', '.join(properties) or 'no parameters'}")  # fmt: skip
