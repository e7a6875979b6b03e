"""How a deployment's flow runs reach agents: release, claim, heartbeats, Late, and lost agents.

A run of a deployment waits as Scheduled. When it is due, a dispatcher (every
worker runs one for the queues it serves, workers/agent.py) *releases* it: in
one transaction that locks the work queue's row, it checks the queue is not
paused and has room under its concurrency limit, and moves the due runs to
Pending. The queue lock makes two dispatchers of one queue take turns, and the
Scheduled -> Pending transition (through the rules, on a locked run row) is made
once, so a run is released once however many dispatchers there are. The caller
then sends each released run's id to the queue's Celery queue.

That message is only a wake-up. The agent that receives it *claims* the run
(Pending, no live holder) before running it; a second message for the same run,
or one for a run another agent holds, is dropped. While it runs the flow, the
agent sends heartbeats; a run whose agent went quiet is Crashed and, if its
deployment has retries left, scheduled again, to be released anew. A released
run nobody claimed (a lost message) is sent again after RUNWAY_RELEASE_RESEND_SECONDS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from orchestrator.deployments.models import Deployment, WorkQueue
from orchestrator.deployments.selectors import work_queue_deployment_ids
from orchestrator.exceptions import ObjectNotFound
from orchestrator.rules.core import retry_delay_seconds
from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_run_set_state
from orchestrator.schemas import TERMINAL_TYPES, SetStateStatus, State, StateDetails, StateType

CLAIMED, HELD, FINISHED = "claimed", "held", "finished"
ACTIVE_TYPES = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)  # what counts against a queue's limit
# An agent holds a run from its claim to its end, through Scheduled too: the flow's own retries
# wait as AwaitingRetry in the agent's process, which must not be released to another agent.
HELD_TYPES = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING)
# Swept when their agent goes quiet: the held runs, and cancelled ones whose process nobody stops.
SWEPT_TYPES = (*HELD_TYPES, StateType.CANCELLING)


@dataclass(frozen=True)
class Released:
    """A run moved to Pending for `queue`: send its id to that Celery queue."""

    flow_run_id: UUID
    queue: str


@dataclass
class FlowRunClaim:
    """The answer to an agent's claim; when claimed, what to run."""

    status: str
    reason: str = ""
    run: dict[str, Any] = field(default_factory=dict)  # entrypoint, code_path, code_version


# --- releasing ------------------------------------------------------------------------------
def release_due_runs(*, queue_names: list[str] | None = None, now: datetime | None = None,
                     budget: int = 50) -> list[Released]:  # fmt: skip
    """Release up to `budget` due runs of these queues (all when None), queue by queue in priority
    order, so an agent with little room fills it from its first queue; a paused queue releases
    nothing, a limited one no more than it has room for."""
    now = now or timezone.now()
    queues = WorkQueue.objects.filter(is_paused=False).order_by("priority", "name")
    if queue_names is not None:
        queues = queues.filter(name__in=queue_names)
    released: list[Released] = []
    for queue in queues:
        if len(released) >= budget:
            break
        released += _release_from(queue, now, budget - len(released))
    return released


def unclaimed_count(*, queue_names: list[str]) -> int:
    """Released runs of these queues no agent has claimed yet: messages on their way."""
    return FlowRun.objects.filter(state_type=StateType.PENDING, worker="", work_queue_name__in=queue_names).count()


def _release_from(queue: WorkQueue, now: datetime, batch: int) -> list[Released]:
    deployment_ids = work_queue_deployment_ids(queue)
    if not deployment_ids:
        return []
    with transaction.atomic():
        locked = WorkQueue.objects.select_for_update().filter(pk=queue.pk).first()  # dispatchers take turns
        if locked is None or locked.is_paused:
            return []
        room = batch
        if locked.concurrency_limit is not None:
            room = min(batch, locked.concurrency_limit - _active_count(locked.name))
        if room <= 0:
            return []
        _skip_missed_slots(deployment_ids, now)
        due = (FlowRun.objects.select_for_update(skip_locked=True)
               .filter(deployment_id__in=deployment_ids, state_type=StateType.SCHEDULED,
                       next_scheduled_start_time__lte=now, worker="")
               .order_by("next_scheduled_start_time", "id").values_list("pk", "state_name")[:room])  # fmt: skip
        released = []
        for run_id, state_name in list(due):
            # A resumed suspended run keeps saying so up to its start (RenameReruns reads it).
            name = "Resuming" if state_name == "Resuming" else None
            pending = State(StateType.PENDING, name=name, message=f"Released to work queue {locked.name!r}")
            if flow_run_set_state(flow_run_id=run_id, state=pending).status != SetStateStatus.ACCEPT:
                continue
            FlowRun.objects.filter(pk=run_id).update(work_queue_name=locked.name, worker="", heartbeat=now)
            released.append(Released(run_id, locked.name))
    return released


def _skip_missed_slots(deployment_ids: list[Any], now: datetime) -> int:
    """Catch-up policy: of each deployment's schedule-made runs whose time has passed and no agent
    took, run only the newest RUNWAY_SCHEDULE_CATCH_UP; the older ones end Skipped (a Cancelled
    state), so agents coming back after downtime run each schedule once, not a burst of stale
    slots. Runs asked for by hand, and runs that already ran (a retry), are never skipped."""
    from django.conf import settings

    from orchestrator.deployments.scheduling import KEY_PREFIX

    keep = max(settings.RUNWAY_SCHEDULE_CATCH_UP, 1)
    due = (FlowRun.objects.filter(deployment_id__in=deployment_ids, state_type=StateType.SCHEDULED, worker="",
                                  next_scheduled_start_time__lte=now, idempotency_key__startswith=KEY_PREFIX,
                                  run_count=0)
           .order_by("deployment_id", "-next_scheduled_start_time").values_list("pk", "deployment_id"))  # fmt: skip
    seen: dict[Any, int] = {}
    skipped = 0
    for run_id, deployment_id in due:
        seen[deployment_id] = seen.get(deployment_id, 0) + 1
        if seen[deployment_id] <= keep:
            continue
        state = State(StateType.CANCELLED, name="Skipped",
                      message=f"Missed slot: a later run of this schedule is due too, and only the newest "
                              f"{keep} missed run(s) are run (RUNWAY_SCHEDULE_CATCH_UP)")  # fmt: skip
        skipped += flow_run_set_state(flow_run_id=run_id, state=state).status == SetStateStatus.ACCEPT
    return skipped


def _active_count(queue: str) -> int:
    """The queue's runs that count against its limit: Pending, Running, Cancelling, and those an
    agent holds while they wait for their next attempt (a flow's own retry, AwaitingRetry)."""
    runs = FlowRun.objects.filter(work_queue_name=queue)
    return (runs.filter(state_type__in=ACTIVE_TYPES) | runs.filter(state_type=StateType.SCHEDULED).exclude(worker="")).count()


def unclaimed_runs_to_resend(*, older_than: float, queue_names: list[str] | None = None,
                             now: datetime | None = None) -> list[Released]:  # fmt: skip
    """Released runs no agent claimed within `older_than` seconds (their message was lost, or every
    agent is busy): answered to be sent again, and stamped so they are not sent again at once."""
    now = now or timezone.now()
    waiting = FlowRun.objects.filter(state_type=StateType.PENDING, worker="", heartbeat__lt=now - timedelta(seconds=older_than))
    if queue_names is not None:
        waiting = waiting.filter(work_queue_name__in=queue_names)
    again = []
    for run_id, queue in list(waiting.exclude(work_queue_name="").values_list("pk", "work_queue_name")[:500]):
        if FlowRun.objects.filter(pk=run_id, state_type=StateType.PENDING, worker="").update(heartbeat=now):
            again.append(Released(run_id, queue))
    return again


# --- Late -----------------------------------------------------------------------------------
def mark_late_runs(*, late_after: float, now: datetime | None = None, limit: int = 500) -> int:
    """Mark Late the deployments' Scheduled runs not started `late_after` seconds after their
    scheduled time; they keep their place and are released as soon as their queue can."""
    now = now or timezone.now()
    overdue = FlowRun.objects.filter(state_type=StateType.SCHEDULED, state_name="Scheduled",
                                     next_scheduled_start_time__lt=now - timedelta(seconds=late_after))  # fmt: skip
    marked = 0
    for run_id, due in list(overdue.exclude(work_queue_name="").values_list("pk", "next_scheduled_start_time")[:limit]):
        late = State(StateType.SCHEDULED, name="Late", message=f"Not started {late_after:g} s after its scheduled time",
                     details=StateDetails(scheduled_time=due))  # fmt: skip
        marked += flow_run_set_state(flow_run_id=run_id, state=late).status == SetStateStatus.ACCEPT
    return marked


# --- claims and heartbeats ------------------------------------------------------------------
def flow_run_claim(*, flow_run_id: UUID, worker: str, hostname: str, pid: int | None, timeout: float) -> FlowRunClaim:
    """Make `worker` the holder of a released run, unless it is not released, finished, or held by a
    live agent. A claimed run records the code version it is about to run."""
    now = timezone.now()
    with transaction.atomic():
        run = FlowRun.objects.select_for_update().filter(pk=flow_run_id).first()
        if run is None:
            raise ObjectNotFound(f"flow run {flow_run_id} does not exist")
        deployment = Deployment.objects.filter(pk=run.deployment_id).first()
        if deployment is None:
            if run.state_type == StateType.PENDING and not run.worker:  # released, then its deployment deleted
                gone = State(StateType.CANCELLED, message="Its deployment was deleted before an agent started it")
                flow_run_set_state(flow_run_id=run.pk, state=gone, force=True)
            return FlowRunClaim(FINISHED, "it is not the run of a deployment (or its deployment was deleted)")
        if run.state_type not in (StateType.PENDING, StateType.RUNNING):
            return FlowRunClaim(FINISHED, f"the run is {run.state_name}, not waiting for an agent")
        if run.worker and run.worker != worker and not _quiet(run, now, timeout):
            return FlowRunClaim(HELD, f"agent {run.worker} is running it")
        if run.state_type == StateType.RUNNING:  # its agent went quiet, or this one restarted
            _lose(run, now)
            return FlowRunClaim(FINISHED, "its agent was lost; it was retried or ended")
        FlowRun.objects.filter(pk=run.pk).update(worker=worker, hostname=hostname, pid=pid, heartbeat=now,
                                                 code_version=deployment.code_version)  # fmt: skip
    return FlowRunClaim(CLAIMED, run={"entrypoint": deployment.entrypoint, "code_path": deployment.code_path,
                                      "code_version": deployment.code_version, "deployment": str(deployment)})  # fmt: skip


def flow_run_heartbeat(*, flow_run_ids: list[UUID], worker: str) -> int:
    """`worker` is alive and still runs these runs; returns how many it still holds."""
    return FlowRun.objects.filter(pk__in=flow_run_ids, worker=worker).update(heartbeat=timezone.now())


def flow_run_process_exited(*, flow_run_id: UUID, worker: str, why: str) -> str:
    """The agent's process for the run ended. If it left the run Running (killed, out of memory),
    the run is Crashed and retried if it may be; if it never started it (its code could not be
    loaded), the run is Crashed for good: starting it again would fail again. A run waiting for
    its next attempt is given back, to be released again. Returns the run's state name afterwards."""
    with transaction.atomic():
        run = FlowRun.objects.select_for_update().filter(pk=flow_run_id, worker=worker).first()
        if run is not None and run.state_type == StateType.PENDING:
            flow_run_set_state(flow_run_id=run.pk, state=State(StateType.CRASHED, message=why), force=True)
        elif run is not None:
            _lose(run, timezone.now(), why=why)
    return FlowRun.objects.filter(pk=flow_run_id).values_list("state_name", flat=True).first() or ""


def flow_runs_sweep_lost(*, timeout: float) -> int:
    """Crash (and retry when they may) the claimed runs whose agent has been quiet for `timeout` s."""
    now = timezone.now()
    quiet = FlowRun.objects.filter(state_type__in=SWEPT_TYPES, heartbeat__lt=now - timedelta(seconds=timeout))
    swept = 0
    for run_id in list(quiet.exclude(worker="").values_list("pk", flat=True)):
        with transaction.atomic():
            run = FlowRun.objects.select_for_update().filter(pk=run_id).first()
            if run and run.worker and run.state_type in SWEPT_TYPES and _quiet(run, now, timeout):
                _lose(run, now)
                swept += 1
    return swept


def _quiet(run: FlowRun, now: datetime, timeout: float) -> bool:
    return run.heartbeat is None or (now - run.heartbeat).total_seconds() > timeout


def _lose(run: FlowRun, now: datetime, why: str | None = None) -> None:
    """The run's agent is gone. A run it had not started goes back to wait for release, and so does
    one waiting for its next attempt; a running one is Crashed, then scheduled again as
    AwaitingRetry while its retries last; a cancelled one is Cancelled."""
    why = why or _lost_message(run, now)
    if run.state_type == StateType.CANCELLING:  # it was to stop anyway: it stopped
        stopped = State(StateType.CANCELLED, message=f"Cancelled: its process was stopped ({why})")
        flow_run_set_state(flow_run_id=run.pk, state=stopped, force=True)
    elif run.state_type == StateType.PENDING:
        again = State(StateType.SCHEDULED, message=f"{why}; released again", details=StateDetails(scheduled_time=now))
        flow_run_set_state(flow_run_id=run.pk, state=again, force=True)
    elif run.state_type == StateType.RUNNING:
        flow_run_set_state(flow_run_id=run.pk, state=State(StateType.CRASHED, message=why), force=True)
        policy = run.empirical_policy or {}
        if run.run_count <= int(policy.get("retries") or 0):
            delay = retry_delay_seconds(policy, attempt=run.run_count)
            retry = State(StateType.SCHEDULED, name="AwaitingRetry", message=why,
                          details=StateDetails(scheduled_time=now + timedelta(seconds=delay)))  # fmt: skip
            flow_run_set_state(flow_run_id=run.pk, state=retry, force=True)
    # No longer held: a run waiting again is free for any agent; a finished one keeps the name of its agent.
    FlowRun.objects.filter(pk=run.pk).exclude(state_type__in=TERMINAL_TYPES).update(worker="", heartbeat=None)


def _lost_message(run: FlowRun, now: datetime) -> str:
    quiet = f"{(now - run.heartbeat).total_seconds():.0f} s ago" if run.heartbeat else "never"
    return (f"Crashed: agent {run.worker or '?'} on {run.hostname or '?'} (pid {run.pid}) stopped "
            f"sending heartbeats (last {quiet})")  # fmt: skip
