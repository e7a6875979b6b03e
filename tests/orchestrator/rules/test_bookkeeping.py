"""The bookkeeping transforms of orchestrator.rules.bookkeeping, through the real services and database."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator.rules.base import OrchestrationContext
from orchestrator.rules.bookkeeping import set_state_timestamp
from orchestrator.runs import services
from orchestrator.runs.selectors import state_from_row
from orchestrator.schemas import SetStateStatus, State, StateDetails, StateType
from tests.orchestrator.rules.helpers import fresh, propose

S = StateType


def _timestamps(run) -> list:
    return list(run.states.order_by("timestamp").values_list("timestamp", flat=True))


class TestStartTime:
    def test_start_time_is_the_time_the_run_first_entered_running(self, make_run):
        run = make_run(S.PENDING, retries=1)
        assert fresh(run).start_time is None

        running = propose(run, S.RUNNING).state
        propose(run, S.FAILED)
        retrying = propose(run, S.RUNNING).state

        assert retrying.name == "Retrying"
        assert fresh(run).start_time == running.timestamp

    def test_a_run_served_from_the_cache_never_starts(self, make_task_run):
        key = f"key-{uuid.uuid4().hex}"
        done = make_task_run(S.PENDING, S.RUNNING)
        propose(done, State(S.COMPLETED, result={"type": "json", "value": 1}, details=StateDetails(cache_key=key)))
        run = make_task_run(S.PENDING)

        propose(run, S.RUNNING, cache_key=key)

        assert fresh(run).start_time is None


class TestEndTime:
    @pytest.mark.parametrize("final", [S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLED])
    def test_end_time_is_set_when_the_run_enters_a_terminal_state(self, make_run, final):
        run = make_run(S.PENDING, S.RUNNING)
        assert run.end_time is None

        answer = propose(run, final)

        assert fresh(run).end_time == answer.state.timestamp

    def test_a_state_that_is_not_terminal_sets_no_end_time(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1)

        propose(run, S.FAILED)  # rejected to AwaitingRetry

        assert fresh(run).end_time is None

    def test_end_time_is_cleared_when_a_task_run_leaves_a_terminal_state_and_set_again_at_the_next(self, make_task_run):
        run = make_task_run(S.PENDING, S.RUNNING, S.FAILED)
        assert run.end_time is not None

        propose(run, S.RUNNING)
        assert fresh(run).end_time is None

        completed = propose(run, S.COMPLETED).state
        assert fresh(run).end_time == completed.timestamp


class TestRunCount:
    def test_run_count_counts_each_entry_into_running(self, make_run):
        run = make_run(S.PENDING, retries=2)
        counts = [fresh(run).run_count]
        for proposal in (S.RUNNING, S.FAILED, S.RUNNING, S.FAILED, S.RUNNING):
            propose(run, proposal)
            counts.append(fresh(run).run_count)

        assert counts == [0, 1, 1, 2, 2, 3]

    def test_a_task_run_rerun_after_failing_counts_from_one_and_its_retries_are_armed_again(self, make_task_run):
        run = make_task_run(S.PENDING, S.RUNNING, retries=1)
        propose(run, S.FAILED)
        propose(run, S.RUNNING)
        assert propose(run, S.FAILED).status == SetStateStatus.ACCEPT
        assert fresh(run).run_count == 2

        assert propose(run, S.RUNNING).state.name == "Rerunning"  # its flow run retries

        assert fresh(run).run_count == 1
        assert propose(run, S.FAILED).state.name == "AwaitingRetry"

    @pytest.mark.parametrize("finished", [S.FAILED, S.CRASHED, S.CANCELLED])
    def test_run_count_starts_again_when_a_task_run_leaves_a_terminal_state_through_pending(
        self, make_task_run, finished
    ):
        run = make_task_run(S.PENDING, S.RUNNING, S.SCHEDULED, S.RUNNING, finished, retries=1)  # ran twice
        assert run.run_count == 2

        propose(run, S.PENDING)
        propose(run, S.RUNNING)

        assert fresh(run).run_count == 1
        assert propose(run, S.FAILED).state.name == "AwaitingRetry"

    def test_a_run_retried_after_its_worker_was_lost_goes_on_counting_and_spends_a_retry(self, make_task_run):
        run = make_task_run(S.PENDING, S.RUNNING, retries=1)
        propose(run, S.CRASHED, force=True)
        propose(run, State(S.SCHEDULED, name="AwaitingRetry"), force=True)
        assert fresh(run).run_count == 1

        assert propose(run, S.RUNNING).state.name == "Retrying"
        assert fresh(run).run_count == 2
        assert propose(run, S.FAILED).status == SetStateStatus.ACCEPT  # no retry left


class TestTotalRunTime:
    def test_total_run_time_adds_up_the_time_spent_running_over_all_attempts(self, make_run):
        run = make_run(S.PENDING, retries=1)
        first = propose(run, S.RUNNING).state
        time.sleep(0.05)
        awaiting = propose(run, S.FAILED).state
        time.sleep(0.05)  # waiting for the retry is not running
        second = propose(run, S.RUNNING).state
        time.sleep(0.05)
        completed = propose(run, S.COMPLETED).state

        spent = (awaiting.timestamp - first.timestamp) + (completed.timestamp - second.timestamp)
        assert fresh(run).total_run_time == pytest.approx(spent.total_seconds(), abs=1e-6)
        assert fresh(run).total_run_time >= 0.1

    def test_time_before_running_is_not_run_time(self, make_run):
        run = make_run(S.SCHEDULED)
        propose(run, S.PENDING)
        time.sleep(0.05)

        propose(run, S.RUNNING)

        assert fresh(run).total_run_time == 0.0


class TestStateTimestamp:
    def test_each_state_is_stamped_with_the_server_clock(self, make_run):
        before = timezone.now()
        run = make_run(S.PENDING)

        answer = propose(run, S.RUNNING)

        assert before < answer.state.timestamp <= timezone.now()
        assert fresh(run).state_timestamp == answer.state.timestamp

    def test_a_state_is_stamped_after_the_previous_one_when_the_clock_has_not_moved(self, make_flow_run):
        run = make_flow_run(S.PENDING)
        previous = state_from_row(run.state)
        ctx = OrchestrationContext(
            run=run, kind="flow", initial=previous, proposed=State(S.RUNNING), now=previous.timestamp
        )

        set_state_timestamp(ctx)

        assert ctx.proposed.timestamp == previous.timestamp + timedelta(microseconds=1)

    def test_a_state_is_stamped_after_the_previous_one_when_the_clock_went_back(self, make_run):
        run = make_run(S.PENDING)
        ahead = timezone.now() + timedelta(hours=1)  # the previous state came from a server whose clock ran fast
        type(run.state).objects.filter(pk=run.state_id).update(timestamp=ahead)

        running = propose(run, S.RUNNING).state
        completed = propose(run, S.COMPLETED).state

        assert running.timestamp == ahead + timedelta(microseconds=1)
        assert completed.timestamp == ahead + timedelta(microseconds=2)
        assert _timestamps(fresh(run)) == [ahead, running.timestamp, completed.timestamp]

    def test_a_scheduled_state_without_a_time_is_scheduled_for_its_own_timestamp(self, make_run):
        run = make_run(S.PENDING, S.RUNNING)

        answer = propose(run, S.SCHEDULED)

        assert answer.state.details.scheduled_time == answer.state.timestamp

    def test_stamping_leaves_the_callers_proposal_as_it_was(self, new_run, make_run):
        proposal = State(S.SCHEDULED)
        first, first_answer = new_run(proposal)
        second, second_answer = new_run(proposal)

        propose(make_run(S.PENDING, S.RUNNING), proposal)

        assert (proposal.id, proposal.timestamp, proposal.details.scheduled_time) == (None, None, None)
        assert first_answer.state.id == fresh(first).state_id != fresh(second).state_id == second_answer.state.id


class TestExpectedStartTime:
    def test_a_run_created_scheduled_is_expected_at_its_scheduled_time(self, new_run):
        at = timezone.now() + timedelta(minutes=10)
        run, _ = new_run(State(S.SCHEDULED, details=StateDetails(scheduled_time=at)))

        propose(run, State(S.SCHEDULED, name="Late", details=StateDetails(scheduled_time=at)))
        propose(run, S.PENDING)

        assert fresh(run).expected_start_time == at

    def test_a_run_created_pending_is_expected_at_its_first_state(self, make_run):
        run = make_run(S.PENDING)
        first = run.state.timestamp

        propose(run, S.RUNNING)

        assert fresh(run).expected_start_time == first


class TestNextScheduledStartTime:
    def test_next_scheduled_start_time_follows_the_scheduled_state_and_is_cleared_after(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1, retry_delay=30)
        assert run.next_scheduled_start_time is None

        awaiting = propose(run, S.FAILED).state
        assert fresh(run).next_scheduled_start_time == awaiting.details.scheduled_time

        propose(run, S.RUNNING, force=True)
        assert fresh(run).next_scheduled_start_time is None

    def test_a_run_made_pending_is_no_longer_due(self, make_run):
        run = make_run(S.SCHEDULED)
        assert run.next_scheduled_start_time == run.state.timestamp

        propose(run, S.PENDING)

        assert fresh(run).next_scheduled_start_time is None


class TestFlowRunRunCount:
    def test_a_task_run_records_the_attempt_of_its_flow_run_it_ran_in(self, make_flow_run, make_task_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING, retries=1)
        task_run = make_task_run(S.PENDING, flow_run=flow_run)
        assert task_run.flow_run_run_count == 0

        propose(task_run, S.RUNNING)
        assert fresh(task_run).flow_run_run_count == 1
        propose(task_run, S.FAILED)
        propose(flow_run, S.FAILED)
        assert propose(flow_run, S.RUNNING).state.name == "Retrying"

        propose(task_run, S.RUNNING)

        assert fresh(task_run).flow_run_run_count == 2

    def test_a_task_run_created_running_records_the_attempt_of_its_flow_run(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING, S.SCHEDULED, S.RUNNING)
        assert flow_run.run_count == 2

        run, _ = services.task_run_create(
            flow_run_id=flow_run.id, task_key="tests.task", dynamic_key=uuid.uuid4().hex[:6], name="t",
            state=State(S.RUNNING),
        )  # fmt: skip

        assert fresh(run).flow_run_run_count == 2

    def test_a_task_run_outside_any_flow_run_records_no_attempt(self):
        run, _ = services.task_run_create(
            flow_run_id=None, task_key="tests.task", dynamic_key=uuid.uuid4().hex[:6], name="t", state=State(S.PENDING)
        )

        propose(run, S.RUNNING)

        assert fresh(run).flow_run_run_count == 0

