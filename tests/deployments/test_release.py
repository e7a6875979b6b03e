"""The rules of releasing deployments' runs to agents and of agents' claims, at the service level
(orchestrator/deployments/agents.py); test_agents.py runs them with real agents."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator.deployments import agents
from orchestrator.deployments.services import (
    deployment_create, deployment_delete, deployment_run_create, work_queue_create, work_queue_set_paused,
)  # fmt: skip
from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_run_set_state
from orchestrator.schemas import SetStateStatus, State, StateDetails, StateType

SCHEMA = {"properties": {"msg": {}}, "required": [], "additionalProperties": False}


@pytest.fixture
def queue_with_deployment():
    """make(limit=None, priority=1, retries=0) -> (queue name, "flow/deployment")."""

    def make(limit: int | None = None, priority: int = 1, retries: int = 0) -> tuple[str, str]:
        queue = f"rq-{uuid.uuid4().hex[:6]}"
        work_queue_create(name=queue, concurrency_limit=limit, priority=priority)
        found, _ = deployment_create(flow_name=f"rel-{uuid.uuid4().hex[:6]}", name="d", entrypoint="f.py:f",
                                     code_path="/code", code_version="c" * 64, parameter_schema=SCHEMA,
                                     work_queue_name=queue, empirical_policy={"retries": retries, "retry_delay": 0})  # fmt: skip
        return queue, str(found)

    return make


def state_name(run_id) -> str:
    return FlowRun.objects.get(pk=run_id).state_name


def test_due_runs_are_released_once_in_order_and_a_paused_queue_or_a_future_run_is_not(queue_with_deployment):
    queue, ref = queue_with_deployment()
    first, second = (deployment_run_create(ref=ref).id for _ in range(2))
    later = deployment_run_create(ref=ref, scheduled_time=timezone.now() + timedelta(hours=1)).id
    work_queue_set_paused(name=queue, paused=True)
    assert agents.release_due_runs(queue_names=[queue]) == []

    work_queue_set_paused(name=queue, paused=False)
    released = agents.release_due_runs(queue_names=[queue])
    assert [r.flow_run_id for r in released] == [first, second] and {r.queue for r in released} == {queue}
    assert agents.release_due_runs(queue_names=[queue]) == []  # released once
    assert (state_name(first), state_name(later)) == ("Pending", "Scheduled")
    assert agents.unclaimed_count(queue_names=[queue]) == 2


def test_a_queue_limit_and_an_agent_s_budget_bound_what_is_released_highest_priority_first(queue_with_deployment):
    low, low_ref = queue_with_deployment(priority=2)
    high, high_ref = queue_with_deployment(limit=1, priority=1)
    lows = [deployment_run_create(ref=low_ref).id for _ in range(3)]
    highs = [deployment_run_create(ref=high_ref).id for _ in range(3)]

    released = agents.release_due_runs(queue_names=[low, high], budget=2)
    assert [r.flow_run_id for r in released] == [highs[0], lows[0]]  # the high queue's limit is 1
    assert agents.release_due_runs(queue_names=[high], budget=5) == []  # still full


def test_a_claim_is_given_once_and_an_agent_that_cannot_load_the_code_ends_the_run(queue_with_deployment):
    queue, ref = queue_with_deployment()
    run_id = deployment_run_create(ref=ref).id
    assert agents.flow_run_claim(flow_run_id=run_id, worker="a/1", hostname="h", pid=1, timeout=30).status == agents.FINISHED
    agents.release_due_runs(queue_names=[queue])

    claim = agents.flow_run_claim(flow_run_id=run_id, worker="a/1", hostname="h", pid=1, timeout=30)
    other = agents.flow_run_claim(flow_run_id=run_id, worker="b/2", hostname="h", pid=2, timeout=30)
    assert claim.status == agents.CLAIMED and claim.run["entrypoint"] == "f.py:f"
    assert other.status == agents.HELD and "a/1" in other.reason
    assert agents.flow_run_process_exited(flow_run_id=run_id, worker="b/2", why="not its run") == "Pending"
    assert agents.flow_run_process_exited(flow_run_id=run_id, worker="a/1", why="Crashed: cannot import") == "Crashed"
    assert agents.release_due_runs(queue_names=[queue]) == []  # not released again and again


def test_a_run_whose_agent_went_quiet_is_crashed_and_retried_and_its_old_process_cannot_write(queue_with_deployment):
    queue, ref = queue_with_deployment(retries=1)
    run_id = deployment_run_create(ref=ref).id
    agents.release_due_runs(queue_names=[queue])
    agents.flow_run_claim(flow_run_id=run_id, worker="a/1", hostname="h", pid=1, timeout=30)
    running = flow_run_set_state(flow_run_id=run_id, state=State(StateType.RUNNING)).state
    FlowRun.objects.filter(pk=run_id).update(heartbeat=timezone.now() - timedelta(seconds=60))

    assert agents.flow_runs_sweep_lost(timeout=30) == 1
    assert state_name(run_id) == "AwaitingRetry" and FlowRun.objects.get(pk=run_id).worker == ""
    assert agents.flow_run_heartbeat(flow_run_ids=[run_id], worker="a/1") == 0  # the old agent stops its process
    stale = State(StateType.COMPLETED, details=StateDetails(from_state_id=str(running.id)))
    assert flow_run_set_state(flow_run_id=run_id, state=stale).status == SetStateStatus.ABORT
    assert [r.flow_run_id for r in agents.release_due_runs(queue_names=[queue])] == [run_id]  # to any agent

    again = agents.flow_run_claim(flow_run_id=run_id, worker="b/2", hostname="h", pid=2, timeout=30)
    assert again.status == agents.CLAIMED
    assert flow_run_set_state(flow_run_id=run_id, state=State(StateType.RUNNING)).state.name == "Retrying"


def test_runs_waiting_for_an_agent_are_cancelled_when_their_deployment_is_deleted(queue_with_deployment):
    queue, ref = queue_with_deployment()
    released, waiting = deployment_run_create(ref=ref).id, None
    agents.release_due_runs(queue_names=[queue])
    waiting = deployment_run_create(ref=ref).id
    deployment_delete(ref=ref)
    assert (state_name(released), state_name(waiting)) == ("Cancelled", "Cancelled")
    assert agents.unclaimed_count(queue_names=[queue]) == 0


def test_late_marks_only_overdue_scheduled_runs_of_deployments(queue_with_deployment):
    queue, ref = queue_with_deployment()
    overdue = deployment_run_create(ref=ref, scheduled_time=timezone.now() - timedelta(seconds=30)).id
    fresh = deployment_run_create(ref=ref).id
    assert agents.mark_late_runs(late_after=15) >= 1
    assert (state_name(overdue), state_name(fresh)) == ("Late", "Scheduled")
    assert FlowRun.objects.get(pk=overdue).next_scheduled_start_time < timezone.now()  # it keeps its place
