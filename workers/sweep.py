"""Every worker looks for runs whose worker vanished, and for Late runs, on a timer in its main process.

Any live worker finishes the runs of a dead one: marks them Crashed and, when
they may be retried, sends their message again. Sweeps by several workers at
once are safe: each run is locked while it is swept, and a run already swept is
no longer Running.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from celery import bootsteps
from django.conf import settings

logger = logging.getLogger("runway.worker")
PRUNE_SECONDS = 3600.0  # how often a worker forgets old log batch keys
LOG_BATCH_KEYS_KEPT = timedelta(days=1)


def sweep_lost_runs() -> None:
    """Task runs and flow runs whose worker vanished; deployments' runs that are Late; notification
    deliveries whose message was lost, or whose worker stopped while sending them."""
    from django.db import close_old_connections

    from orchestrator.deployments.agents import flow_runs_sweep_lost, mark_late_runs
    from orchestrator.notifications.services import notification_deliveries_sweep
    from orchestrator.runs.claims import task_runs_due_to_send, task_runs_sweep_lost
    from orchestrator.runs.pauses import flow_runs_fail_expired_pauses
    from workers.tasks import resend

    try:
        dispatches = task_runs_sweep_lost(timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT)
        if dispatches:
            logger.warning("retrying %d task run(s) whose worker vanished", len(dispatches))
        resend(dispatches)
        resend(task_runs_due_to_send(resend_after=settings.RUNWAY_RELEASE_RESEND_SECONDS))
        lost = flow_runs_sweep_lost(timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT)
        if lost:
            logger.warning("%d flow run(s) lost their agent: crashed, and retried if their deployment allows", lost)
        expired = flow_runs_fail_expired_pauses()
        if expired:
            logger.warning("%d paused flow run(s) were not resumed before their timeout: failed", expired)
        late = mark_late_runs(late_after=settings.RUNWAY_LATE_AFTER_SECONDS)
        if late:
            logger.warning("%d scheduled flow run(s) are Late: no agent started them in time", late)
        resent, failed = notification_deliveries_sweep()
        if resent or failed:
            logger.warning("notifications: %d sent again (their message was lost), %d failed (their worker stopped "
                           "while sending)", resent, failed)  # fmt: skip
    except Exception:
        logger.exception("the sweep for lost task runs failed; it runs again in %s s", settings.RUNWAY_SWEEP_SECONDS)
    finally:
        close_old_connections()


def prune_log_batch_keys() -> None:
    """Forget log batch keys older than a day (orchestrator.runs.services.log_batches_prune)."""
    from django.db import close_old_connections

    from orchestrator.runs.services import log_batches_prune

    try:
        log_batches_prune(older_than=LOG_BATCH_KEYS_KEPT)
    except Exception:
        logger.exception("pruning old log batch keys failed; it runs again in %.0f s", PRUNE_SECONDS)
    finally:
        close_old_connections()


class LostRunSweep(bootsteps.StartStopStep):
    """A worker bootstep: run `sweep_lost_runs` every RUNWAY_SWEEP_SECONDS, `prune_log_batch_keys` hourly."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.timer_ref = self.prune_ref = None

    def start(self, worker) -> None:
        self.timer_ref = worker.timer.call_repeatedly(settings.RUNWAY_SWEEP_SECONDS, sweep_lost_runs, priority=10)
        self.prune_ref = worker.timer.call_repeatedly(PRUNE_SECONDS, prune_log_batch_keys, priority=10)

    def stop(self, worker) -> None:
        for ref in (self.timer_ref, self.prune_ref):
            if ref is not None:
                ref.cancel()
