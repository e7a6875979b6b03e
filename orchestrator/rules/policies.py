"""Ordered rule lists per run kind. Order matters: the first rule to answer ends the pass."""
from __future__ import annotations

from orchestrator.rules import core

CORE_FLOW_POLICY = [
    core.PreventDuplicateTransitions,
    core.RejectIllegalTransitions,
    core.BypassCancellingRunsWithNoProcess,
    core.PreventPendingTransitions,
    core.EnsureOnlyScheduledRunsMarkedLate,
    core.CopyScheduledTime,
    core.WaitForScheduledTime,
    core.RetryFailedRuns,
    core.RenameReruns,
    core.FinishUnfinishedTaskRuns,
]

CORE_TASK_POLICY = [
    core.PreventDuplicateTransitions,
    core.RejectIllegalTransitions,
    core.CacheRetrieval,
    core.PreventRunningTasksFromStoppedFlows,
    core.PreventPendingTransitions,
    core.EnsureOnlyScheduledRunsMarkedLate,
    core.CopyScheduledTime,
    core.WaitForScheduledTime,
    core.RetryFailedRuns,
    core.RenameReruns,
    core.CacheInsertion,
]

# force=True: an authoritative writer (the engine marking NotReady, an operator)
# skips the core rules but keeps idempotency and bookkeeping.
MINIMAL_POLICY = [core.PreventDuplicateTransitions]
