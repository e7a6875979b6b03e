"""Which Celery worker holds a task run: claims, heartbeats, and the sweep for runs whose worker vanished.

A message can arrive twice (the broker redelivers it when a worker dies before
acknowledging) and a worker can die silently (SIGKILL, a lost host). So before
running a task run a worker claims it. The claim fails when the run is finished
or another worker holds it and still sends heartbeats; a claim on a run whose
worker went quiet ends that attempt as Crashed and, if retries remain, starts
the next. While it runs the task, the worker sends heartbeats; the sweep finds
Running runs whose heartbeats stopped and does the same, answering with the
messages to send again. Every state change goes through the services.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orchestrator.exceptions import ObjectNotFound
from orchestrator.rules.core import retry_delay_seconds
from orchestrator.runs import store
from orchestrator.runs.models import TaskRun
from orchestrator.runs.services import task_run_set_state
from orchestrator.schemas import TERMINAL_TYPES, OrchestrationResult, State, StateDetails, StateType

CLAIMED, HELD, FINISHED = "claimed", "held", "finished"
_HELD_TYPES = (StateType.PENDING, StateType.RUNNING)  # a claimed run in these states has a live holder


@dataclass
class Claim:
    """The answer to a claim: `status` is claimed (run it), held (another live worker has it) or finished."""

    status: str
    reason: str = ""


def task_run_claim(*, task_run_id: UUID, worker: str, hostname: str, pid: int | None,
                   dispatch: dict[str, Any] | None, timeout: float) -> Claim:  # fmt: skip
    """Make `worker` the holder of the run, unless it is finished or held by a live worker."""
    now = timezone.now()
    if _claim_waiting_run(task_run_id, worker, hostname, pid, dispatch, now, timeout):
        return Claim(CLAIMED)  # the usual case, in one statement: a run waiting to start, free or its holder quiet
    return _claim_other_run(task_run_id, worker, hostname, pid, dispatch, now, timeout)


def _claim_other_run(task_run_id: UUID, worker: str, hostname: str, pid: int | None,
                     dispatch: dict[str, Any] | None, now: datetime, timeout: float) -> Claim:  # fmt: skip
    """The claim of a run that is not simply waiting: finished, held, or Running with its worker quiet."""
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().filter(pk=task_run_id).first()
        if run is None:
            raise ObjectNotFound(f"task run {task_run_id} does not exist")
        if run.state_type in (StateType.COMPLETED, StateType.CANCELLED, StateType.CANCELLING):
            return Claim(FINISHED, f"the run is {run.state_name}")
        held = run.worker and run.worker != worker and not _quiet(run, now, timeout)
        if held and run.state_type in _HELD_TYPES:
            return Claim(HELD, f"worker {run.worker} is running it")
        if run.state_type == StateType.RUNNING:  # its worker went quiet (or it was this worker, restarted)
            if not _crash_and_maybe_retry(run, now, why=_lost_message(run, now)):
                return Claim(FINISHED, "its worker was lost and it has no retries left")
        elif run.state_type in (StateType.FAILED, StateType.CRASHED):
            return Claim(FINISHED, f"the run is {run.state_name}")
        TaskRun.objects.filter(pk=run.pk).update(worker=worker, hostname=hostname, pid=pid,
                                                 heartbeat=now, dispatch=dispatch)  # fmt: skip
    return Claim(CLAIMED)


def task_run_claim_and_start(*, task_run_id: UUID, state: State, worker: str, hostname: str, pid: int | None,
                             dispatch: dict[str, Any] | None, timeout: float) -> tuple[Claim, OrchestrationResult | None]:  # fmt: skip
    """Claim the run for `worker` and propose `state` (its Running) in one transaction: a worker's
    start is one write, one request over HTTP, instead of two. Nothing is proposed when the claim fails.

    A proposal sent again (its answer was lost) finds its transition key already written: it is
    answered as a replay, not taken for a second claim on a run this worker already started.
    """
    now = timezone.now()
    with transaction.atomic():
        if not _claim_waiting_run(task_run_id, worker, hostname, pid, dispatch, now, timeout):
            key = state.details.transition_key
            if not (key and store.state_with_transition_key(store.Db(), "task", task_run_id, key)):
                claim = _claim_other_run(task_run_id, worker, hostname, pid, dispatch, now, timeout)
                if claim.status != CLAIMED:
                    return claim, None
        return Claim(CLAIMED), task_run_set_state(task_run_id=task_run_id, state=state, savepoint=False)


def _claim_waiting_run(task_run_id: UUID, worker: str, hostname: str, pid: int | None,
                       dispatch: dict[str, Any] | None, now: datetime, timeout: float) -> bool:  # fmt: skip
    """Claim a Pending or Scheduled run nobody live holds with one conditional UPDATE; False if it is not one.
    (Hand-written SQL: the ORM would spend longer compiling this statement than the database running it.)"""
    return store.claim_waiting_task_run(store.Db(), task_run_id, worker=worker, hostname=hostname, pid=pid,
                                        dispatch=dispatch, now=now, quiet_since=now - timedelta(seconds=timeout))  # fmt: skip


def task_run_release(*, task_run_id: UUID, worker: str) -> bool:
    """`worker` gives up a run it claimed but did not start (it must wait: a retry delay, a full
    concurrency limit), so that whichever worker gets its next message may claim it, and the sweep
    does not take its silence for a death. False if `worker` no longer held it."""
    waiting = TaskRun.objects.filter(pk=task_run_id, worker=worker,
                                     state_type__in=(StateType.PENDING, StateType.SCHEDULED))  # fmt: skip
    return waiting.update(worker="", heartbeat=None) == 1


def task_run_heartbeat(*, task_run_ids: list[UUID], worker: str) -> int:
    """Record that `worker` is alive and still running these runs; returns how many it still holds."""
    return TaskRun.objects.filter(pk__in=task_run_ids, worker=worker).update(heartbeat=timezone.now())


def task_runs_sweep_lost(*, timeout: float, task_run_ids: list[UUID] | None = None) -> list[dict[str, Any]]:
    """End as Crashed the claimed Pending or Running runs whose worker has been quiet for `timeout` seconds
    (a worker can die between its claim and Running); retry those with retries left.
    Returns the dispatches (message and queue) of the retried runs, to send again."""
    now = timezone.now()
    lost = TaskRun.objects.filter(state_type__in=_HELD_TYPES, heartbeat__lt=now - timedelta(seconds=timeout))
    if task_run_ids is not None:
        lost = lost.filter(pk__in=task_run_ids)
    resend = []
    for run_id in list(lost.exclude(worker="").values_list("pk", flat=True)):
        with transaction.atomic():
            run = TaskRun.objects.select_for_update().filter(pk=run_id).first()
            if run is None or run.state_type not in _HELD_TYPES or not run.worker or not _quiet(run, now, timeout):
                continue  # it finished, or beat, meanwhile
            if _crash_and_maybe_retry(run, now, why=_lost_message(run, now)) and run.dispatch:
                resend.append(run.dispatch)
    return resend


def task_runs_due_to_send(*, resend_after: float, now: datetime | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """The dispatches of runs that waited in the database (a retry delay, longer than a broker
    should hold a message) and are due now: each stamped as sent (`heartbeat`, with no worker)
    so that another sweep sends it again only if nobody claimed it within `resend_after` seconds.
    A run whose flow run has ended is not sent: a worker's claim could not start it (its flow run
    is not Running), so it would only be sent again every `resend_after` seconds, forever."""
    now = now or timezone.now()
    waiting = (TaskRun.objects.filter(state_type=StateType.SCHEDULED, worker="", dispatch__isnull=False,
                                      next_scheduled_start_time__lte=now)
               .filter(Q(heartbeat__isnull=True) | Q(heartbeat__lt=now - timedelta(seconds=resend_after)))
               .exclude(flow_run__state_type__in=[t.value for t in TERMINAL_TYPES]))  # fmt: skip
    due = []
    for run_id, dispatch in list(waiting.values_list("pk", "dispatch")[:limit]):
        if waiting.filter(pk=run_id).update(heartbeat=now) == 1:  # one sweeper sends it, not every one
            due.append(dispatch)
    return due


def _quiet(run: TaskRun, now: datetime, timeout: float) -> bool:
    return run.heartbeat is None or (now - run.heartbeat).total_seconds() > timeout


def _lost_message(run: TaskRun, now: datetime) -> str:
    quiet = f"{(now - run.heartbeat).total_seconds():.0f} s ago" if run.heartbeat else "never"
    return (f"Crashed: worker {run.worker or '?'} on {run.hostname or '?'} (pid {run.pid}) stopped "
            f"sending heartbeats (last {quiet})")  # fmt: skip


def _crash_and_maybe_retry(run: TaskRun, now: datetime, *, why: str) -> bool:
    """Record the lost attempt as Crashed; True if a retry was scheduled (AwaitingRetry)."""
    task_run_set_state(task_run_id=run.pk, state=State(type=StateType.CRASHED, message=why), force=True)
    policy = run.empirical_policy or {}
    if run.run_count > int(policy.get("retries") or 0):
        return False
    delay = retry_delay_seconds(policy, attempt=run.run_count)
    retry = State(type=StateType.SCHEDULED, name="AwaitingRetry", message=why,
                  details=StateDetails(scheduled_time=now + timedelta(seconds=delay)))  # fmt: skip
    task_run_set_state(task_run_id=run.pk, state=retry, force=True)
    return True
