"""Transforms applied to every state that is written: they stamp, never decide.

Each takes the context after the rules ran and updates `ctx.proposed` or the
run row (saved by the service together with the state).
"""
from __future__ import annotations

from datetime import timedelta

from orchestrator.rules.base import OrchestrationContext
from orchestrator.schemas import TERMINAL_TYPES, StateType


def set_state_timestamp(ctx: OrchestrationContext) -> None:
    """Stamp with the server clock, strictly after the previous state so history orders."""
    stamp = ctx.now
    if ctx.initial and ctx.initial.timestamp and stamp <= ctx.initial.timestamp:
        stamp = ctx.initial.timestamp + timedelta(microseconds=1)
    ctx.proposed.timestamp = stamp
    if ctx.proposed.type == StateType.SCHEDULED and ctx.proposed.details.scheduled_time is None:
        ctx.proposed.details.scheduled_time = stamp


def set_start_time(ctx: OrchestrationContext) -> None:
    """The first time the run enters Running."""
    if ctx.proposed.type == StateType.RUNNING and ctx.run.start_time is None:
        ctx.run.start_time = ctx.proposed.timestamp


def set_end_time(ctx: OrchestrationContext) -> None:
    """Set on entering a terminal state; cleared when a run leaves one to run again."""
    if ctx.proposed.type in TERMINAL_TYPES:
        ctx.run.end_time = ctx.proposed.timestamp
    elif ctx.run.end_time is not None:
        ctx.run.end_time = None


def increment_run_count(ctx: OrchestrationContext) -> None:
    """Count attempts, on entering Running.

    Leaving a terminal state (to Running or Pending) starts the count again, so
    retries re-arm; a flow run resuming from Paused goes on with its attempt, and
    so does a run retried after its worker was lost (Crashed, then AwaitingRetry):
    that retry spends one of its retries.
    """
    retrying_a_crash = ctx.proposed.name == "AwaitingRetry"
    if ctx.initial_type in TERMINAL_TYPES and ctx.proposed.type not in TERMINAL_TYPES and not retrying_a_crash:
        ctx.run.run_count = 0
    resuming = ctx.kind == "flow" and ctx.initial_type == StateType.PAUSED
    if ctx.proposed.type == StateType.RUNNING and not resuming:
        ctx.run.run_count += 1


def increment_run_time(ctx: OrchestrationContext) -> None:
    """Add the time spent in the Running state being left."""
    if ctx.initial_type == StateType.RUNNING and ctx.initial.timestamp:
        spent = (ctx.proposed.timestamp - ctx.initial.timestamp).total_seconds()
        ctx.run.total_run_time += max(spent, 0.0)


def set_expected_start_time(ctx: OrchestrationContext) -> None:
    """When the run was first meant to start: its scheduled time, or its first state's time."""
    if ctx.run.expected_start_time is None:
        scheduled = ctx.proposed.details.scheduled_time
        ctx.run.expected_start_time = scheduled or ctx.proposed.timestamp


def set_next_scheduled_start_time(ctx: OrchestrationContext) -> None:
    """Kept while Scheduled, for the queries that find due and late runs."""
    scheduled = ctx.proposed.type == StateType.SCHEDULED
    ctx.run.next_scheduled_start_time = ctx.proposed.details.scheduled_time if scheduled else None


def record_flow_run_attempt(ctx: OrchestrationContext) -> None:
    """On a task run entering Running: which attempt of its flow run it ran in."""
    if ctx.proposed.type == StateType.RUNNING and ctx.run.flow_run is not None:
        ctx.run.flow_run_run_count = ctx.run.flow_run.run_count


def release_concurrency_slots(ctx: OrchestrationContext) -> None:
    """A task run leaving Running gives back its concurrency slots, whatever moved it (a retry, a crash, a sweep)."""
    if ctx.initial_type == StateType.RUNNING and ctx.proposed.type != StateType.RUNNING and ctx.run.tags:
        from orchestrator.limits.services import slots_release

        slots_release(task_run_id=ctx.run.id)


COMMON = [
    set_state_timestamp,
    set_start_time,
    set_end_time,
    increment_run_time,
    increment_run_count,
    set_expected_start_time,
    set_next_scheduled_start_time,
]
FLOW_TRANSFORMS = COMMON
TASK_TRANSFORMS = [*COMMON, record_flow_run_attempt, release_concurrency_slots]
