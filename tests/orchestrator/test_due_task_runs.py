"""task_runs_due_to_send: runs whose retry waited in the database, sent again by a worker's sweep when due."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from orchestrator.runs import claims, services
from orchestrator.runs.models import TaskRun
from orchestrator.schemas import State, StateType

S = StateType


def _waiting_retry(make_flow_run, make_task_run, flow_run=None):
    """A task run a worker claimed, ran, and gave back when it failed with a retry left (AwaitingRetry, due now)."""
    flow_run = flow_run or make_flow_run(S.PENDING, S.RUNNING)
    run = make_task_run(S.PENDING, flow_run=flow_run, retries=1, retry_delay=0)
    dispatch = {"body": {"task_run_id": str(run.id)}, "queue": "q"}
    assert claims.task_run_claim(task_run_id=run.id, worker="w/1", hostname="h", pid=1, dispatch=dispatch,
                                 timeout=30).status == claims.CLAIMED  # fmt: skip
    services.task_run_set_state(task_run_id=run.id, state=State(S.RUNNING))
    answer = services.task_run_set_state(task_run_id=run.id, state=State(S.FAILED))
    assert answer.state.name == "AwaitingRetry"
    assert claims.task_run_release(task_run_id=run.id, worker="w/1")
    return flow_run, run, dispatch


def test_a_due_run_is_sent_once_then_again_only_if_nobody_claimed_it(make_flow_run, make_task_run):
    _, run, dispatch = _waiting_retry(make_flow_run, make_task_run)
    now = timezone.now() + timedelta(seconds=1)

    assert dispatch in claims.task_runs_due_to_send(resend_after=60, now=now)
    assert dispatch not in claims.task_runs_due_to_send(resend_after=60, now=now + timedelta(seconds=30))
    assert dispatch in claims.task_runs_due_to_send(resend_after=60, now=now + timedelta(seconds=61))


def test_a_run_whose_flow_run_ended_is_not_sent(make_flow_run, make_task_run):
    flow_run, run, dispatch = _waiting_retry(make_flow_run, make_task_run)
    services.flow_run_set_state(flow_run_id=flow_run.id, state=State(S.FAILED), force=True)
    assert TaskRun.objects.get(pk=run.id).state_name == "AwaitingRetry"  # its flow run ended without ending it
    _, other, other_dispatch = _waiting_retry(make_flow_run, make_task_run)  # a live flow run's, in the same sweep

    due = claims.task_runs_due_to_send(resend_after=60, now=timezone.now() + timedelta(seconds=1))

    assert other_dispatch in due and dispatch not in due
