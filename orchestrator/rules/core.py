"""The orchestration rules, one small class each, named for what they do.

docs/rules.md tables every rule with what it guards and what it answers; keep
the two in step (tests/orchestrator/rules/test_docs.py checks the names).
"""
from __future__ import annotations

import random
from datetime import timedelta

from orchestrator.rules.base import ALL_STATES, OrchestrationContext, Rule
from orchestrator.schemas import State, StateDetails, StateType

S = StateType
_RERUNNABLE = frozenset({S.FAILED, S.CRASHED, S.CANCELLED})

# Legal transitions by current state type (None: a new run). Specific rules below
# refine these (PENDING -> PENDING is listed so that PreventPendingTransitions can abort it).
FLOW_TRANSITIONS: dict[StateType | None, frozenset[StateType]] = {
    None: frozenset({S.SCHEDULED, S.PENDING, S.RUNNING}),
    S.SCHEDULED: frozenset({S.SCHEDULED, S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED, S.FAILED, S.CRASHED}),
    S.PENDING: frozenset({S.SCHEDULED, S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED, S.FAILED, S.CRASHED}),
    S.RUNNING: frozenset({S.SCHEDULED, S.PENDING, S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLING, S.CANCELLED, S.PAUSED}),
    S.PAUSED: frozenset({S.SCHEDULED, S.RUNNING, S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLING, S.CANCELLED}),
    S.CANCELLING: frozenset({S.PENDING, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CRASHED: frozenset(),
    S.CANCELLED: frozenset({S.PENDING}),
}
# Task runs may leave Failed, Crashed and Cancelled for Pending or Running: that is
# how a retried flow reruns its unfinished tasks while Completed ones keep their result.
TASK_TRANSITIONS = {
    **FLOW_TRANSITIONS,
    **{t: FLOW_TRANSITIONS[t] | {S.PENDING, S.RUNNING} for t in _RERUNNABLE},
}


class PreventDuplicateTransitions(Rule):
    """A proposal repeating a transition key already written for the run is answered again, not re-applied.

    The current state's key is answered as the first time. A key written further back
    (a repeat that arrives late: the client's first request was still being served
    when it retried and went on, or the run moved on meanwhile) is refused, with the
    run's current state, so that a proposal is never applied twice.
    """

    def before_transition(self, ctx: OrchestrationContext) -> None:
        key = ctx.proposed.details.transition_key
        if not key or ctx.initial is None:
            return
        if ctx.initial.details.transition_key == key:
            ctx.replay("this transition was already applied; returning its result")
            return
        if ctx.proposed.details.from_state_id == str(ctx.initial.id):
            return  # made from the current state: had it been applied, the run would have left that state
        from orchestrator.runs import store

        earlier = store.state_with_transition_key(store.Db(), ctx.kind, ctx.run.id, key)
        if earlier is not None:
            ctx.reject(None, f"this transition (key {key!r}) was already applied, as {earlier}; the run has moved "
                             f"on to {ctx.initial.name} since, so it is not applied again")  # fmt: skip


class AbortSupersededProposals(Rule):
    """A proposal made from a state the run has since left is not applied: its proposer lost the run.

    The case it guards: a worker is presumed dead (no heartbeats), its attempt is
    Crashed and retried elsewhere, and then the worker wakes up (a long GC pause,
    SIGSTOP/SIGCONT, a network partition) and reports its outcome. The SDK sends
    `from_state_id`, the Running state its attempt started in, with every state
    that ends the attempt.
    """

    def before_transition(self, ctx: OrchestrationContext) -> None:
        expected = ctx.proposed.details.from_state_id
        if expected and ctx.initial and str(ctx.initial.id) != expected:
            ctx.abort(f"this proposal follows state {expected}, but the run has moved on to {ctx.initial.name} "
                      "since (its attempt was taken over, e.g. after its worker went quiet); it is not applied")  # fmt: skip


class RejectIllegalTransitions(Rule):
    """Only transitions in the legal table are considered; anything else leaves the run where it is.

    One exception: a task run Completed without a persisted result may run again
    (Pending or Running), since a retried flow run could not reuse its result.
    """

    def before_transition(self, ctx: OrchestrationContext) -> None:
        table = FLOW_TRANSITIONS if ctx.kind == "flow" else TASK_TRANSITIONS
        if ctx.proposed.type not in table[ctx.initial_type] and not _rerun_of_unpersisted_result(ctx):
            source = ctx.initial.name if ctx.initial else "no state"
            ctx.reject(None, f"a {ctx.kind} run cannot go from {source} to {ctx.proposed.name}")


def _rerun_of_unpersisted_result(ctx: OrchestrationContext) -> bool:
    return (
        ctx.kind == "task"
        and ctx.initial_type == S.COMPLETED
        and (ctx.initial.result or {}).get("type") == "unpersisted"
        and ctx.proposed.type in (S.PENDING, S.RUNNING)
    )


class CacheRetrieval(Rule):
    """A task about to run whose cache key has an unexpired Completed state gets that state, named Cached."""

    TO_STATES = frozenset({S.RUNNING})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        details = ctx.proposed.details
        if not details.cache_key or details.refresh_cache:
            return
        from orchestrator.runs.selectors import task_cache_lookup

        entry = task_cache_lookup(cache_key=details.cache_key, now=ctx.now)
        if entry is None:
            return
        cached = State(
            type=S.COMPLETED,
            name="Cached",
            message=f"Cached result of key {details.cache_key!r}",
            result=entry.state.result,
            details=StateDetails(cache_key=details.cache_key, cache_expiration=entry.expiration),
        )
        ctx.reject(cached, "a valid cached result exists for this cache key")


class PreventRunningTasksFromStoppedFlows(Rule):
    """A task may start only while its flow run is Running; a paused flow pauses it."""

    TO_STATES = frozenset({S.RUNNING})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        flow_run = ctx.run.flow_run
        if flow_run is None or flow_run.state_type == S.RUNNING:
            return
        if flow_run.state_type == S.PAUSED:
            ctx.reject(State(type=S.PAUSED, name="NotReady"), "the flow run is paused")
        else:
            ctx.abort(f"the flow run is {flow_run.state_name}, not Running; the task cannot start")


class SecureTaskConcurrencySlots(Rule):
    """A task run with tags takes a slot of each tag's concurrency limit to run; if one is full, it waits.

    A limit of 0 would never free a slot, so the run is aborted instead of
    waiting forever. Slots are given back when the run leaves Running
    (bookkeeping.release_concurrency_slots), or here if the Running proposal
    is not written after all.
    """

    TO_STATES = frozenset({S.RUNNING})

    def __init__(self) -> None:
        self.taken: list[int] = []

    def before_transition(self, ctx: OrchestrationContext) -> None:
        if not ctx.run.tags:
            return
        from django.conf import settings

        from orchestrator.limits.services import slots_take

        answer = slots_take(task_run_id=ctx.run.id, tags=ctx.run.tags, now=ctx.now)
        full = answer.full
        if full is None:
            self.taken = answer.taken
        elif full.concurrency_limit == 0:
            ctx.abort(f"the concurrency limit of tag {full.tag!r} is 0, so no run with this tag may run; "
                      f"raise it with `python manage.py concurrency-limit create {full.tag} N`")  # fmt: skip
        else:
            wait = settings.RUNWAY_TASK_CONCURRENCY_WAIT_SECONDS
            ctx.delay(wait, f"concurrency limit of tag {full.tag!r} reached ({answer.held}/{full.concurrency_limit} "
                            f"running); trying again in {wait:g} s")  # fmt: skip

    def cleanup(self, ctx: OrchestrationContext) -> None:
        if self.taken:
            from orchestrator.limits.services import slots_release

            slots_release(task_run_id=ctx.run.id, limit_ids=self.taken)


class BypassCancellingRunsWithNoProcess(Rule):
    """Cancelling a run no process is executing (Scheduled, Paused without one, or suspended:
    its process ended) cancels it at once."""

    FROM_STATES = frozenset({S.SCHEDULED, S.PAUSED})
    TO_STATES = frozenset({S.CANCELLING})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        if ctx.initial_type == S.SCHEDULED or not ctx.run.pid or ctx.initial.details.pause_reschedule:
            cancelled = State(type=S.CANCELLED, message=ctx.proposed.message or "Cancelled before it ran")
            ctx.reject(cancelled, "no process is running this run; cancelled directly")


class PreventPendingTransitions(Rule):
    """A run that is already Pending, Running or Cancelling cannot be made Pending again: stops double submission."""

    FROM_STATES = frozenset({S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED})
    TO_STATES = frozenset({S.PENDING})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        if ctx.kind == "task" and ctx.initial_type == S.CANCELLED:
            return  # a retried flow may rerun a cancelled task
        ctx.abort(f"the run is already {ctx.initial.name}; another process has it")


class EnsureOnlyScheduledRunsMarkedLate(Rule):
    """Only a Scheduled run can become Late."""

    TO_STATES = frozenset({S.SCHEDULED})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        if ctx.proposed.name == "Late" and ctx.initial_type != S.SCHEDULED:
            ctx.reject(None, "only a Scheduled run can be marked Late")


class CopyScheduledTime(Rule):
    """A Scheduled run moving to Pending carries its scheduled time along."""

    FROM_STATES = frozenset({S.SCHEDULED})
    TO_STATES = frozenset({S.PENDING})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        if ctx.proposed.details.scheduled_time is None:
            ctx.proposed.details.scheduled_time = ctx.initial.details.scheduled_time


class WaitForScheduledTime(Rule):
    """A run may not start before its scheduled time (server clock): the client is told to wait."""

    FROM_STATES = frozenset({S.SCHEDULED, S.PENDING})
    TO_STATES = frozenset({S.RUNNING})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        scheduled = ctx.initial.details.scheduled_time
        if scheduled and scheduled > ctx.now:
            wait = (scheduled - ctx.now).total_seconds()
            ctx.delay(wait, f"scheduled to start at {scheduled.isoformat()}")


class RetryFailedRuns(Rule):
    """A Running run that fails with retries left is rescheduled as AwaitingRetry after its retry delay."""

    FROM_STATES = frozenset({S.RUNNING})
    TO_STATES = frozenset({S.FAILED})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        policy = ctx.run.empirical_policy or {}
        retries = int(policy.get("retries") or 0)
        if ctx.run.run_count > retries or not ctx.proposed.details.retriable:
            return
        delay = retry_delay_seconds(policy, attempt=ctx.run.run_count)
        retry = State(
            type=S.SCHEDULED,
            name="AwaitingRetry",
            message=ctx.proposed.message,
            result=ctx.proposed.result,
            details=StateDetails(scheduled_time=ctx.now + timedelta(seconds=delay)),
        )
        ctx.reject(retry, f"retry {ctx.run.run_count} of {retries} in {delay:g}s")


def retry_delay_seconds(policy: dict, *, attempt: int) -> float:
    """The delay before retry number `attempt` (1-based): a number, or a list indexed by attempt, with jitter."""
    delay = policy.get("retry_delay") or 0
    if isinstance(delay, list):
        delay = delay[min(attempt, len(delay)) - 1] if delay else 0
    jitter = float(policy.get("retry_jitter_factor") or 0)
    if jitter > 0:
        delay = random.uniform(max(0.0, delay * (1 - jitter)), delay * (1 + jitter))
    return float(delay)


class RenameReruns(Rule):
    """A run starting again is named Retrying (after AwaitingRetry) or Rerunning; one resuming from
    Paused is not, nor a suspended run released again once resumed (Pending named Resuming).

    A deployment's run goes from AwaitingRetry through Pending (its release to an agent)
    to Running; leaving a final state resets the run count, so a Pending run that has
    run before is always such a retry.
    """

    FROM_STATES = ALL_STATES - {S.PAUSED}
    TO_STATES = frozenset({S.RUNNING})

    def before_transition(self, ctx: OrchestrationContext) -> None:
        if ctx.run.run_count > 0 and ctx.proposed.name == "Running":
            if ctx.initial and ctx.initial.name == "Resuming":
                return  # a suspended run, resumed: it goes on Running
            retrying = ctx.initial and (ctx.initial.name == "AwaitingRetry" or ctx.initial.type == S.PENDING)
            ctx.proposed.name = "Retrying" if retrying else "Rerunning"


class CacheInsertion(Rule):
    """A task completing with a cache key and a persisted result is entered in the cache."""

    TO_STATES = frozenset({S.COMPLETED})

    def after_transition(self, ctx: OrchestrationContext) -> None:
        state = ctx.proposed
        persisted = (state.result or {}).get("type") in {"json", "file"}
        if state.details.cache_key and persisted:
            from orchestrator.runs.models import TaskCacheEntry

            TaskCacheEntry.objects.create(
                cache_key=state.details.cache_key,
                state_id=state.id,
                expiration=state.details.cache_expiration,
            )


class CrashTaskRunsLeftRunning(Rule):
    """A flow run that completes or fails while one of its task runs is still Running marks that task run Crashed.

    The engine waits for every task run before the flow's final state, so one
    still Running has lost its engine (interrupted by the flow's timeout, say).
    """

    TO_STATES = frozenset({S.COMPLETED, S.FAILED})

    def after_transition(self, ctx: OrchestrationContext) -> None:
        from orchestrator.runs.services import flow_run_finish_task_runs

        message = f"Flow run {ctx.run.name!r} ended {ctx.proposed.name} while this task run was Running: its engine was interrupted"
        flow_run_finish_task_runs(flow_run_id=ctx.run.id, state_type=S.CRASHED, message=message, only=[S.RUNNING])


class FinishUnfinishedTaskRuns(Rule):
    """A flow run that crashes or is cancelled takes its unfinished task runs with it, saying why.

    It also matches Cancelling, and sits before the rules that rewrite proposals,
    so that it sees the Cancelled that BypassCancellingRunsWithNoProcess writes
    in place of a proposed Cancelling.
    """

    TO_STATES = frozenset({S.CANCELLING, S.CRASHED, S.CANCELLED})

    def after_transition(self, ctx: OrchestrationContext) -> None:
        if ctx.proposed.type == S.CANCELLING:
            return  # the process running the flow stops its task runs, then proposes Cancelled
        # Imported here: services import this module to build policies.
        from orchestrator.runs.services import flow_run_finish_task_runs

        verb = "crashed" if ctx.proposed.type == S.CRASHED else "was cancelled"
        message = f"Flow run {ctx.run.name!r} {verb}: {ctx.proposed.message or ctx.proposed.name}"
        flow_run_finish_task_runs(flow_run_id=ctx.run.id, state_type=ctx.proposed.type, message=message)

