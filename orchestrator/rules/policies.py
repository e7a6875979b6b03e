"""Ordered rule lists per run kind. Order matters: the first rule to answer ends the pass."""
from __future__ import annotations

from orchestrator.rules import core

CORE_FLOW_POLICY = [
    core.PreventDuplicateTransitions,
    core.AbortSupersededProposals,  # an agent's process that lost its run (its agent presumed dead)
    core.RejectIllegalTransitions,
    core.FinishUnfinishedTaskRuns,  # before any rule that may rewrite Cancelling to Cancelled
    core.BypassCancellingRunsWithNoProcess,
    core.PreventPendingTransitions,
    core.EnsureOnlyScheduledRunsMarkedLate,
    core.CopyScheduledTime,
    core.WaitForScheduledTime,
    core.RetryFailedRuns,
    core.RenameReruns,
    core.CrashTaskRunsLeftRunning,  # after RetryFailedRuns: a flow run about to retry keeps its task runs
]

CORE_TASK_POLICY = [
    core.PreventDuplicateTransitions,
    core.AbortSupersededProposals,
    core.RejectIllegalTransitions,
    core.CacheRetrieval,
    core.PreventRunningTasksFromStoppedFlows,
    core.PreventPendingTransitions,
    core.EnsureOnlyScheduledRunsMarkedLate,
    core.CopyScheduledTime,
    core.WaitForScheduledTime,
    core.SecureTaskConcurrencySlots,  # after the rules that may delay: a slot is taken only to run now
    core.RetryFailedRuns,
    core.RenameReruns,
    core.CacheInsertion,
]

# force=True: an authoritative writer (the engine marking NotReady, an operator, the
# sweep crashing runs whose process died) skips the core rules but keeps idempotency,
# bookkeeping, and a crashed or cancelled flow run still takes its task runs with it.
MINIMAL_FLOW_POLICY = [core.PreventDuplicateTransitions, core.AbortSupersededProposals, core.FinishUnfinishedTaskRuns]
MINIMAL_TASK_POLICY = [core.PreventDuplicateTransitions, core.AbortSupersededProposals]
