"""Pausing and resuming flow runs, and the input a paused run waits for.

A flow's code pauses its run (`pause_flow_run` in the SDK): the run goes Paused
with a pause key (which pause of the run this is) and a deadline; the run
records, under that key, the JSON schema of the input it waits for, if any.
Someone resumes it (UI, API, CLI, SDK): the input is checked against the
schema and stored under the key, and the run goes back to Running, where the
waiting process picks it up. A *suspended* run (`suspend_flow_run`, for
deployment runs) has no process waiting: resumed, it is Scheduled to run again,
and when its code reaches the same pause it finds it resumed, with its input.
A pause nobody resumes in time fails the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import jsonschema
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_run_set_state
from orchestrator.schemas import OrchestrationResult, SetStateStatus, State, StateDetails, StateType

MAX_PAUSE_SECONDS = 366 * 24 * 3600


@dataclass
class PauseAnswer:
    """What the pausing code learns: the run's state now, and whether this pause was resumed
    already (a suspended run running again), with the input it was given."""

    result: OrchestrationResult
    resumed: bool = False
    value: Any = None


def flow_run_pause(*, flow_run_id: UUID, key: str, timeout_seconds: float, reschedule: bool = False,
                   input_schema: dict[str, Any] | None = None, from_state_id: str | None = None) -> PauseAnswer:  # fmt: skip
    """Pause a Running flow run (its own code asks) until resumed or `timeout_seconds` pass."""
    _check_timeout(timeout_seconds)
    if input_schema is not None:
        _check_schema(input_schema)
    with transaction.atomic():
        run = _locked(flow_run_id)
        entry = (run.run_input or {}).get(key)
        if entry and entry.get("resumed"):
            return PauseAnswer(result=_current(run), resumed=True, value=entry.get("value"))
        run.run_input = {**(run.run_input or {}), key: {"schema": input_schema, "resumed": False}}
        run.save(update_fields=["run_input"])
        details = StateDetails(pause_key=key, pause_reschedule=reschedule, from_state_id=from_state_id,
                               pause_timeout=timezone.now() + timedelta(seconds=timeout_seconds))  # fmt: skip
        name = "Suspended" if reschedule else "Paused"
        result = flow_run_set_state(flow_run_id=run.pk, state=State(StateType.PAUSED, name=name, details=details))
    return PauseAnswer(result=result)


def flow_run_resume(*, flow_run_id: UUID, run_input: Any = None, by: str = "") -> OrchestrationResult:
    """Resume a Paused run, with the input it waits for (checked against its schema): a paused
    process goes on; a suspended run is scheduled to run again at once."""
    with transaction.atomic():
        run = _locked(flow_run_id)
        if run.state_type != StateType.PAUSED:
            raise InvalidInput(f"flow run {run.name!r} is {run.state_name}, not Paused: only a paused run can be resumed")
        details = StateDetails.from_dict(run.state.details) if run.state_id else StateDetails()
        key = details.pause_key or ""
        entry = (run.run_input or {}).get(key, {})
        _check_input(run.name, entry.get("schema"), run_input)
        run.run_input = {**(run.run_input or {}), key: {**entry, "resumed": True, "value": run_input}}
        run.save(update_fields=["run_input"])
        message = f"Resumed by {by}" if by else "Resumed"
        if details.pause_reschedule:
            again = State(StateType.SCHEDULED, name="Resuming", message=message,
                          details=StateDetails(scheduled_time=timezone.now()))  # fmt: skip
        else:
            again = State(StateType.RUNNING, message=message)
        return flow_run_set_state(flow_run_id=run.pk, state=again)


def flow_runs_fail_expired_pauses(*, grace_seconds: float | None = None) -> int:
    """Fail the paused runs whose pause ran out (the process waiting would have failed it itself,
    unless it is gone; a suspended run has none). Returns how many."""
    grace = settings.RUNWAY_HEARTBEAT_TIMEOUT if grace_seconds is None else grace_seconds
    now = timezone.now()
    failed = 0
    for run in FlowRun.objects.filter(state_type=StateType.PAUSED).select_related("state")[:500]:
        timeout = StateDetails.from_dict(run.state.details).pause_timeout if run.state_id else None
        if timeout is not None and timeout + timedelta(seconds=grace) < now:
            message = f"Flow run was not resumed before its pause timed out at {timeout.isoformat()}"
            answer = flow_run_set_state(flow_run_id=run.pk, state=State(StateType.FAILED, message=message))
            failed += answer.state.type == StateType.FAILED
    return failed


def _locked(flow_run_id: UUID) -> FlowRun:
    run = FlowRun.objects.select_for_update().filter(pk=flow_run_id).first()
    if run is None:
        raise ObjectNotFound(f"flow run {flow_run_id} does not exist")
    return FlowRun.objects.select_related("state").get(pk=run.pk)


def _current(run: FlowRun) -> OrchestrationResult:
    from orchestrator.runs.selectors import state_from_row

    return OrchestrationResult(status=SetStateStatus.ACCEPT, state=state_from_row(run.state))


def _check_timeout(seconds: float) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_PAUSE_SECONDS:
        raise InvalidInput(f"a pause's timeout must be a number of seconds above 0 and at most a year, got {seconds!r}")


def _check_schema(schema: Any) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise InvalidInput(f"the input schema of the pause is not a valid JSON schema: {error.message}") from None


def _check_input(run_name: str, schema: dict[str, Any] | None, value: Any) -> None:
    if schema is None:
        if value is not None:
            raise InvalidInput(f"flow run {run_name!r} does not wait for input; resume it without one")
        return
    if value is None and schema.get("type") != "null":
        raise InvalidInput(f"flow run {run_name!r} waits for input matching its schema: {_describe(schema)}")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the input"
        raise InvalidInput(f"input for flow run {run_name!r} does not match its schema: {where}: {error.message}")


def _describe(schema: dict[str, Any]) -> str:
    properties = schema.get("properties")
    if properties:
        required = set(schema.get("required", ()))
        return "an object with " + ", ".join(
            f"{name} ({spec.get('type', 'any')}{', required' if name in required else ''})" for name, spec in properties.items()
        )  # fmt: skip
    return f"a value of type {schema.get('type', 'any')}"
