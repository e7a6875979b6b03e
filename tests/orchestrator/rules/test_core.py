"""One class per rule of orchestrator.rules.core, through the real services and database.

Each class covers the proposal the rule lets through and every other answer it
gives (REJECT, WAIT, ABORT), for flow runs and task runs where the rule is in
both policies. Runs are walked into their starting state with force=True.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator.exceptions import InvalidInput
from orchestrator.rules import core
from orchestrator.runs import services
from orchestrator.runs.models import FlowRun, TaskCacheEntry, TaskRun
from orchestrator.schemas import SetStateStatus, State, StateDetails, StateType
from tests.orchestrator.rules.helpers import fresh, history, propose, rows

S = StateType
ACCEPT, REJECT, WAIT, ABORT = SetStateStatus.ACCEPT, SetStateStatus.REJECT, SetStateStatus.WAIT, SetStateStatus.ABORT


def _task_run_create(flow_run: FlowRun | None, state: State, **policy):
    return services.task_run_create(
        flow_run_id=flow_run.id if flow_run else None, task_key="tests.task",
        dynamic_key=uuid.uuid4().hex[:6], name="task-0", state=state, empirical_policy=policy,
    )  # fmt: skip


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


# How to walk a run into a state it can only reach after others.
PATHS = {
    S.PENDING: (S.PENDING,),
    S.RUNNING: (S.PENDING, S.RUNNING),
    S.CANCELLING: (S.PENDING, S.RUNNING, S.CANCELLING),
}


class TestPreventDuplicateTransitions:
    def test_a_repeated_proposal_is_accepted_again_without_writing_a_state(self, make_run):
        run = make_run(S.PENDING)
        first = propose(run, S.RUNNING, transition_key="k1")
        written = rows(run)

        again = propose(run, S.RUNNING, transition_key="k1")

        assert first.status == again.status == ACCEPT
        assert again.state.id == first.state.id
        assert again.reason == "this transition was already applied; returning its result"
        assert rows(run) == written
        assert fresh(run).run_count == 1

    def test_a_repeat_of_a_proposal_that_was_renamed_is_accepted_again(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1)
        assert propose(run, S.FAILED).status == REJECT
        first = propose(run, S.RUNNING, transition_key="k1")
        assert (first.status, first.state.name) == (ACCEPT, "Retrying")

        again = propose(run, S.RUNNING, transition_key="k1")

        assert (again.status, again.state.id) == (ACCEPT, first.state.id)
        assert history(run) == ["Pending", "Running", "AwaitingRetry", "Retrying"]

    def test_a_repeat_of_a_rejected_proposal_gets_the_same_rejection(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1)
        first = propose(run, S.FAILED, transition_key="k1")
        assert (first.status, first.state.name) == (REJECT, "AwaitingRetry")

        again = propose(run, S.FAILED, transition_key="k1")

        assert (again.status, again.state.id) == (REJECT, first.state.id)
        assert again.reason == "this transition was already applied; returning its result"
        assert history(run) == ["Pending", "Running", "AwaitingRetry"]
        assert fresh(run).state_name == "AwaitingRetry"

    def test_a_repeat_of_a_proposal_served_from_the_cache_gets_the_cached_state_again(self, make_task_run):
        key = _key()
        done = make_task_run(S.PENDING, S.RUNNING)
        propose(done, _completed(key))
        run = make_task_run(S.PENDING)
        first = propose(run, S.RUNNING, cache_key=key, transition_key="k1")
        assert (first.status, first.state.name) == (REJECT, "Cached")

        again = propose(run, S.RUNNING, cache_key=key, transition_key="k1")

        assert (again.status, again.state.id) == (REJECT, first.state.id)
        assert again.reason == "this transition was already applied; returning its result"
        assert rows(run) == 2

    def test_a_new_transition_key_is_orchestrated_as_usual(self, make_run):
        run = make_run(S.PENDING)
        propose(run, S.RUNNING, transition_key="k1")

        answer = propose(run, S.COMPLETED, transition_key="k2")

        assert (answer.status, answer.state.type) == (ACCEPT, S.COMPLETED)
        assert history(run) == ["Pending", "Running", "Completed"]

    def test_proposals_without_a_key_are_never_taken_for_repeats(self, make_run):
        run = make_run(S.SCHEDULED)

        answers = [propose(run, S.SCHEDULED), propose(run, S.SCHEDULED)]

        assert [a.status for a in answers] == [ACCEPT, ACCEPT]
        assert rows(run) == 3

    def test_a_repeated_forced_proposal_is_replayed_too(self, make_run):
        run = make_run(S.PENDING, S.RUNNING)
        first = propose(run, S.CRASHED, force=True, transition_key="k1")

        again = propose(run, S.CRASHED, force=True, transition_key="k1")

        assert (again.status, again.state.id) == (ACCEPT, first.state.id)
        assert history(run) == ["Pending", "Running", "Crashed"]


class TestRejectIllegalTransitions:
    def test_a_legal_transition_is_accepted(self, make_run):
        run = make_run(S.PENDING)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.type, answer.reason) == (ACCEPT, S.RUNNING, None)
        assert fresh(run).state_type == S.RUNNING

    def test_leaving_completed_is_rejected_and_the_run_stays_where_it_is(self, make_run, kind):
        run = make_run(S.PENDING, S.RUNNING, S.COMPLETED)
        before = (run.state_id, run.run_count, run.end_time)

        answer = propose(run, S.RUNNING)

        assert answer.status == REJECT
        assert answer.reason == f"a {kind} run cannot go from Completed to Running"
        assert answer.state.id == run.state_id
        run = fresh(run)
        assert (run.state_id, run.run_count, run.end_time) == before
        assert rows(run) == 3

    def test_a_failed_flow_run_cannot_run_again(self, make_flow_run):
        run = make_flow_run(S.PENDING, S.RUNNING, S.FAILED)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.type) == (REJECT, S.FAILED)
        assert answer.reason == "a flow run cannot go from Failed to Running"
        assert rows(run) == 3

    @pytest.mark.parametrize("finished", [S.FAILED, S.CRASHED, S.CANCELLED])
    def test_an_unsuccessful_task_run_may_run_again_when_its_flow_run_retries(self, make_task_run, finished):
        run = make_task_run(S.PENDING, S.RUNNING, finished)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.type, answer.state.name) == (ACCEPT, S.RUNNING, "Rerunning")
        assert rows(run) == 4

    def test_a_new_run_cannot_start_cancelling(self, new_run, kind):
        with pytest.raises(InvalidInput, match=f"a {kind} run cannot go from no state to Cancelling"):
            new_run(State(S.CANCELLING))

    def test_a_new_run_refused_by_the_rules_is_not_created(self, flow):
        name = f"refused-{uuid.uuid4().hex[:6]}"
        with pytest.raises(InvalidInput, match="cannot start as Completed"):
            services.flow_run_create(flow_id=flow.id, name=name, state=State(S.COMPLETED))

        assert not FlowRun.objects.filter(name=name).exists()


def _completed(key: str | None, result: dict | None = None, **details) -> State:
    """A Completed proposal under cache key `key`, with `result` (by default a persisted JSON value)."""
    result = result or {"type": "json", "value": 3}
    return State(S.COMPLETED, result=result, details=StateDetails(cache_key=key, **details))


def _cache(make_task_run, key: str, value: object = 42, **details) -> State:
    """A completed task run whose result is cached under `key`; returns its Completed state."""
    run = make_task_run(S.PENDING, S.RUNNING)
    answer = propose(run, _completed(key, {"type": "json", "value": value}, **details))
    assert answer.status == ACCEPT
    return answer.state


class TestCompletedWithoutPersistedResult:
    def test_a_task_run_completed_without_a_persisted_result_may_run_again(self, make_task_run):
        task_run = make_task_run(S.PENDING, S.RUNNING)
        propose(task_run, State(S.COMPLETED, result={"type": "unpersisted"}))

        answer = propose(task_run, S.RUNNING)

        assert (answer.status, answer.state.type, answer.state.name) == (ACCEPT, S.RUNNING, "Rerunning")
        assert fresh(task_run).run_count == 1

    def test_a_task_run_completed_with_a_persisted_result_keeps_it(self, make_task_run):
        task_run = make_task_run(S.PENDING, S.RUNNING)
        propose(task_run, State(S.COMPLETED, result={"type": "json", "value": 3}))

        answer = propose(task_run, S.RUNNING)

        assert (answer.status, answer.state.type) == (REJECT, S.COMPLETED)
        assert answer.state.result == {"type": "json", "value": 3}


class TestCacheRetrieval:
    def test_a_task_with_a_cached_result_is_rejected_to_that_result_named_cached(self, make_task_run):
        key = _key()
        source = _cache(make_task_run, key, value={"x": 1})
        run = make_task_run(S.PENDING)

        answer = propose(run, S.RUNNING, cache_key=key)

        assert answer.status == REJECT
        assert (answer.state.type, answer.state.name) == (S.COMPLETED, "Cached")
        assert answer.state.result == source.result == {"type": "json", "value": {"x": 1}}
        assert answer.state.details.cache_key == key
        assert answer.reason == "a valid cached result exists for this cache key"
        assert history(run) == ["Pending", "Cached"]
        run = fresh(run)
        assert (run.state_type, run.run_count, run.start_time) == (S.COMPLETED, 0, None)

    def test_the_newest_unexpired_entry_is_served(self, make_task_run):
        key = _key()
        _cache(make_task_run, key, value="old")
        _cache(make_task_run, key, value="new")

        answer = propose(make_task_run(S.PENDING), S.RUNNING, cache_key=key)

        assert answer.state.result == {"type": "json", "value": "new"}

    def test_a_task_created_running_with_a_cached_result_starts_as_cached(self, make_task_run, make_flow_run):
        key = _key()
        _cache(make_task_run, key)

        flow_run = make_flow_run(S.PENDING, S.RUNNING)

        run, answer = _task_run_create(flow_run, State(S.RUNNING, details=StateDetails(cache_key=key)))

        assert (answer.status, answer.state.name) == (REJECT, "Cached")
        assert history(run) == ["Cached"]

    def test_a_task_without_a_cache_key_runs(self, make_task_run):
        run = make_task_run(S.PENDING)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")

    def test_a_task_whose_key_has_no_entry_runs(self, make_task_run):
        answer = propose(make_task_run(S.PENDING), S.RUNNING, cache_key=_key())

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")

    def test_an_expired_entry_is_not_served(self, make_task_run):
        key = _key()
        _cache(make_task_run, key, cache_expiration=timezone.now() - timedelta(seconds=1))

        answer = propose(make_task_run(S.PENDING), S.RUNNING, cache_key=key)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")

    def test_an_entry_not_yet_expired_is_served(self, make_task_run):
        key = _key()
        _cache(make_task_run, key, cache_expiration=timezone.now() + timedelta(hours=1))

        answer = propose(make_task_run(S.PENDING), S.RUNNING, cache_key=key)

        assert (answer.status, answer.state.name) == (REJECT, "Cached")

    def test_refresh_cache_runs_the_task_even_with_a_valid_entry(self, make_task_run):
        key = _key()
        _cache(make_task_run, key)

        answer = propose(make_task_run(S.PENDING), S.RUNNING, cache_key=key, refresh_cache=True)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")

    def test_a_flow_run_is_never_served_from_the_cache(self, make_task_run, make_flow_run):
        key = _key()
        _cache(make_task_run, key)

        answer = propose(make_flow_run(S.PENDING), S.RUNNING, cache_key=key)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")


class TestPreventRunningTasksFromStoppedFlows:
    def test_a_task_in_a_running_flow_run_starts(self, make_task_run):
        answer = propose(make_task_run(S.PENDING), S.RUNNING)

        assert (answer.status, answer.state.type) == (ACCEPT, S.RUNNING)

    def test_a_task_in_a_paused_flow_run_is_rejected_to_paused_not_ready(self, make_task_run):
        run = make_task_run(S.PENDING, flow_state=S.PAUSED)

        answer = propose(run, S.RUNNING)

        assert answer.status == REJECT
        assert (answer.state.type, answer.state.name) == (S.PAUSED, "NotReady")
        assert answer.reason == "the flow run is paused"
        assert history(run) == ["Pending", "NotReady"]
        assert fresh(run).run_count == 0

    @pytest.mark.parametrize(
        "flow_state", [S.SCHEDULED, S.PENDING, S.CANCELLING, S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLED]
    )
    def test_a_task_in_a_flow_run_that_is_not_running_is_aborted(self, make_task_run, flow_state):
        run = make_task_run(S.PENDING, flow_state=flow_state)
        flow_state_name = run.flow_run.state_name

        answer = propose(run, S.RUNNING)

        assert answer.status == ABORT
        assert answer.reason == f"the flow run is {flow_state_name}, not Running; the task cannot start"
        assert answer.state.id == run.state_id
        assert history(run) == ["Pending"]

    def test_a_task_run_outside_any_flow_run_starts(self):
        run, _ = _task_run_create(None, State(S.PENDING))

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.type) == (ACCEPT, S.RUNNING)

    def test_a_task_created_running_in_a_stopped_flow_run_is_refused(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.COMPLETED)

        with pytest.raises(InvalidInput, match="the flow run is Completed, not Running"):
            _task_run_create(flow_run, State(S.RUNNING))

        assert not TaskRun.objects.filter(flow_run_id=flow_run.id).exists()


class TestBypassCancellingRunsWithNoProcess:
    @pytest.mark.parametrize("pid", [None, 4242])
    def test_cancelling_a_scheduled_flow_run_cancels_it_at_once(self, make_flow_run, pid):
        run = make_flow_run(S.SCHEDULED, pid=pid)

        answer = propose(run, S.CANCELLING)

        assert answer.status == REJECT
        assert (answer.state.type, answer.state.message) == (S.CANCELLED, "Cancelled before it ran")
        assert answer.reason == "no process is running this run; cancelled directly"
        assert history(run) == ["Scheduled", "Cancelled"]
        assert fresh(run).end_time is not None

    def test_the_proposals_message_is_kept(self, make_flow_run):
        run = make_flow_run(S.SCHEDULED)

        answer = propose(run, State(S.CANCELLING, message="not needed today"))

        assert (answer.state.type, answer.state.message) == (S.CANCELLED, "not needed today")

    def test_cancelling_a_paused_flow_run_without_a_process_cancels_it_at_once(self, make_flow_run):
        run = make_flow_run(S.PENDING, S.RUNNING, S.PAUSED)

        answer = propose(run, S.CANCELLING)

        assert (answer.status, answer.state.type) == (REJECT, S.CANCELLED)
        assert history(run)[-1] == "Cancelled"

    def test_a_paused_flow_run_with_a_process_goes_to_cancelling(self, make_flow_run):
        run = make_flow_run(S.PENDING, S.RUNNING, S.PAUSED, pid=4242)

        answer = propose(run, S.CANCELLING)

        assert (answer.status, answer.state.type, answer.reason) == (ACCEPT, S.CANCELLING, None)

    def test_a_running_flow_run_goes_to_cancelling_for_its_process_to_stop(self, make_flow_run):
        run = make_flow_run(S.PENDING, S.RUNNING)

        answer = propose(run, S.CANCELLING)

        assert (answer.status, answer.state.type) == (ACCEPT, S.CANCELLING)

    def test_a_scheduled_task_run_goes_to_cancelling(self, make_task_run):
        answer = propose(make_task_run(S.SCHEDULED), S.CANCELLING)

        assert (answer.status, answer.state.type) == (ACCEPT, S.CANCELLING)


class TestPreventPendingTransitions:
    @pytest.mark.parametrize("current", [S.PENDING, S.RUNNING, S.CANCELLING])
    def test_a_run_already_taken_cannot_be_made_pending_again(self, make_run, current):
        run = make_run(*PATHS[current])
        written = rows(run)

        answer = propose(run, S.PENDING)

        assert answer.status == ABORT
        assert answer.reason == f"the run is already {current.value.title()}; another process has it"
        assert answer.state.id == run.state_id
        assert rows(run) == written

    def test_a_cancelled_flow_run_cannot_be_made_pending(self, make_flow_run):
        run = make_flow_run(S.PENDING, S.CANCELLED)

        answer = propose(run, S.PENDING)

        assert (answer.status, answer.reason) == (ABORT, "the run is already Cancelled; another process has it")
        assert rows(run) == 2

    def test_a_cancelled_task_run_may_be_made_pending_to_run_again(self, make_task_run):
        run = make_task_run(S.PENDING, S.CANCELLED)

        answer = propose(run, S.PENDING)

        assert (answer.status, answer.state.type) == (ACCEPT, S.PENDING)

    def test_a_scheduled_run_is_made_pending(self, make_run):
        answer = propose(make_run(S.SCHEDULED), S.PENDING)

        assert (answer.status, answer.state.type) == (ACCEPT, S.PENDING)


class TestEnsureOnlyScheduledRunsMarkedLate:
    def test_a_scheduled_run_is_marked_late(self, make_run):
        run = make_run(S.SCHEDULED)

        answer = propose(run, State(S.SCHEDULED, name="Late"))

        assert (answer.status, answer.state.type, answer.state.name) == (ACCEPT, S.SCHEDULED, "Late")
        assert fresh(run).state_name == "Late"

    @pytest.mark.parametrize("current", [S.PENDING, S.RUNNING])
    def test_a_run_that_is_not_scheduled_cannot_be_marked_late(self, make_run, current):
        run = make_run(*PATHS[current])
        written = rows(run)

        answer = propose(run, State(S.SCHEDULED, name="Late"))

        assert answer.status == REJECT
        assert answer.reason == "only a Scheduled run can be marked Late"
        assert answer.state.id == run.state_id
        assert rows(run) == written

    def test_a_running_run_may_still_be_rescheduled(self, make_run):
        answer = propose(make_run(S.PENDING, S.RUNNING), S.SCHEDULED)

        assert (answer.status, answer.state.name) == (ACCEPT, "Scheduled")

    def test_a_new_run_cannot_start_late(self, new_run):
        with pytest.raises(InvalidInput, match="only a Scheduled run can be marked Late"):
            new_run(State(S.SCHEDULED, name="Late"))


class TestCopyScheduledTime:
    def test_a_scheduled_run_made_pending_keeps_its_scheduled_time(self, new_run):
        at = timezone.now() + timedelta(minutes=5)
        run, _ = new_run(State(S.SCHEDULED, details=StateDetails(scheduled_time=at)))

        answer = propose(run, S.PENDING)

        assert (answer.status, answer.state.details.scheduled_time) == (ACCEPT, at)
        assert fresh(run).state.details["scheduled_time"] == at.isoformat()

    def test_a_pending_proposal_with_its_own_scheduled_time_keeps_it(self, new_run):
        at = timezone.now() + timedelta(minutes=5)
        run, _ = new_run(State(S.SCHEDULED, details=StateDetails(scheduled_time=at)))

        answer = propose(run, S.PENDING, scheduled_time=at - timedelta(minutes=1))

        assert answer.state.details.scheduled_time == at - timedelta(minutes=1)


class TestWaitForScheduledTime:
    def test_a_run_proposed_running_before_its_scheduled_time_is_told_to_wait(self, new_run):
        at = timezone.now() + timedelta(seconds=60)
        run, created = new_run(State(S.SCHEDULED, details=StateDetails(scheduled_time=at)))

        answer = propose(run, S.RUNNING)

        assert answer.status == WAIT
        assert 55 < answer.delay_seconds <= 60
        assert answer.reason == f"scheduled to start at {at.isoformat()}"
        assert answer.state.id == created.state.id
        assert rows(run) == 1
        assert fresh(run).run_count == 0

    def test_a_pending_run_waits_for_the_scheduled_time_it_carries(self, new_run):
        at = timezone.now() + timedelta(seconds=60)
        run, _ = new_run(State(S.SCHEDULED, details=StateDetails(scheduled_time=at)))
        propose(run, S.PENDING)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.type) == (WAIT, S.PENDING)
        assert 55 < answer.delay_seconds <= 60

    def test_a_run_whose_scheduled_time_has_passed_starts(self, new_run):
        run, _ = new_run(State(S.SCHEDULED, details=StateDetails(scheduled_time=timezone.now() - timedelta(seconds=1))))

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.type) == (ACCEPT, S.RUNNING)

    def test_a_run_awaiting_retry_waits_for_its_retry_delay(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1, retry_delay=30)
        propose(run, S.FAILED)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.name) == (WAIT, "AwaitingRetry")
        assert 25 < answer.delay_seconds <= 30


class TestRetryFailedRuns:
    def test_a_failed_run_with_retries_left_is_rejected_to_awaiting_retry(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=2)
        failed = State(S.FAILED, message="boom", result={"type": "exception", "message": "boom"})

        answer = propose(run, failed)

        assert answer.status == REJECT
        assert (answer.state.type, answer.state.name) == (S.SCHEDULED, "AwaitingRetry")
        assert answer.state.details.scheduled_time == answer.state.timestamp
        assert (answer.state.message, answer.state.result) == (failed.message, failed.result)
        assert answer.reason == "retry 1 of 2 in 0s"
        run = fresh(run)
        assert (run.state_name, run.run_count, run.end_time) == ("AwaitingRetry", 1, None)
        assert history(run) == ["Pending", "Running", "AwaitingRetry"]

    def test_a_failed_run_with_no_retries_left_fails(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1)
        propose(run, S.FAILED)
        propose(run, S.RUNNING)

        answer = propose(run, S.FAILED)

        assert (answer.status, answer.state.type, answer.reason) == (ACCEPT, S.FAILED, None)
        assert history(run) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Failed"]
        assert fresh(run).run_count == 2

    def test_a_failed_run_without_retries_fails(self, make_run):
        answer = propose(make_run(S.PENDING, S.RUNNING), S.FAILED)

        assert (answer.status, answer.state.type) == (ACCEPT, S.FAILED)

    def test_a_failure_marked_not_retriable_fails_despite_retries_left(self, make_run):
        answer = propose(make_run(S.PENDING, S.RUNNING, retries=3), S.FAILED, retriable=False)

        assert (answer.status, answer.state.type) == (ACCEPT, S.FAILED)

    def test_a_run_failing_before_it_ran_is_not_retried(self, make_run):
        answer = propose(make_run(S.PENDING, retries=3), S.FAILED)

        assert (answer.status, answer.state.type) == (ACCEPT, S.FAILED)

    def test_a_scalar_retry_delay_schedules_the_retry_that_far_ahead(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1, retry_delay=10)

        answer = propose(run, S.FAILED)

        assert answer.state.details.scheduled_time - answer.state.timestamp == timedelta(seconds=10)
        assert answer.reason == "retry 1 of 1 in 10s"
        assert fresh(run).next_scheduled_start_time == answer.state.details.scheduled_time

    def test_a_list_of_retry_delays_is_indexed_by_attempt(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=3, retry_delay=[1, 5, 60])
        delays = []
        for _ in range(3):
            answer = propose(run, S.FAILED)
            assert answer.status == REJECT
            delays.append(answer.state.details.scheduled_time - answer.state.timestamp)
            propose(run, S.RUNNING, force=True)  # do not wait out the delay

        assert delays == [timedelta(seconds=1), timedelta(seconds=5), timedelta(seconds=60)]
        assert propose(run, S.FAILED).status == ACCEPT
        assert fresh(run).run_count == 4

    def test_a_jittered_retry_delay_stays_within_its_bounds(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1, retry_delay=100, retry_jitter_factor=0.5)

        answer = propose(run, S.FAILED)

        delay = (answer.state.details.scheduled_time - answer.state.timestamp).total_seconds()
        assert 50 <= delay <= 150


class TestRetryDelaySeconds:
    def test_no_delay_configured_is_zero(self):
        assert core.retry_delay_seconds({}, attempt=1) == 0.0
        assert core.retry_delay_seconds({"retry_delay": []}, attempt=1) == 0.0

    def test_a_scalar_delay_applies_to_every_attempt(self):
        assert [core.retry_delay_seconds({"retry_delay": 7}, attempt=n) for n in (1, 2, 9)] == [7.0, 7.0, 7.0]

    def test_a_list_is_indexed_by_attempt_and_its_last_value_repeats(self):
        policy = {"retry_delay": [1, 2, 4]}

        assert [core.retry_delay_seconds(policy, attempt=n) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 4.0, 4.0]

    def test_jitter_spreads_delays_within_the_factor_of_the_base(self):
        policy = {"retry_delay": 10, "retry_jitter_factor": 0.3}

        delays = [core.retry_delay_seconds(policy, attempt=1) for _ in range(500)]

        assert all(7.0 <= d <= 13.0 for d in delays)
        assert min(delays) < 9.0 and max(delays) > 11.0

    def test_jitter_larger_than_one_never_gives_a_negative_delay(self):
        policy = {"retry_delay": [10], "retry_jitter_factor": 2}

        delays = [core.retry_delay_seconds(policy, attempt=1) for _ in range(500)]

        assert all(0.0 <= d <= 30.0 for d in delays)


class TestRenameReruns:
    def test_a_first_run_is_named_running(self, make_run):
        answer = propose(make_run(S.PENDING), S.RUNNING)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")

    def test_a_run_starting_after_awaiting_retry_is_named_retrying(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, retries=1)
        propose(run, S.FAILED)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.type, answer.state.name) == (ACCEPT, S.RUNNING, "Retrying")

    def test_a_run_that_ran_before_and_starts_again_is_named_rerunning(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, S.SCHEDULED)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.name) == (ACCEPT, "Rerunning")
        assert fresh(run).run_count == 2

    def test_a_failed_task_run_rerun_by_its_flow_is_named_rerunning(self, make_task_run):
        answer = propose(make_task_run(S.PENDING, S.RUNNING, S.FAILED), S.RUNNING)

        assert (answer.status, answer.state.name) == (ACCEPT, "Rerunning")

    def test_a_proposal_with_its_own_name_keeps_it(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, S.SCHEDULED)

        answer = propose(run, State(S.RUNNING, name="Resumed by hand"))

        assert answer.state.name == "Resumed by hand"

    def test_a_paused_flow_run_resuming_is_running_in_the_same_attempt(self, make_flow_run):
        run = make_flow_run(S.PENDING, S.RUNNING, S.PAUSED, retries=1)

        answer = propose(run, S.RUNNING)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")
        assert fresh(run).run_count == 1
        assert propose(run, S.FAILED).state.name == "AwaitingRetry"  # the pause did not use up the retry


class TestCacheInsertion:
    @pytest.mark.parametrize(
        "result", [{"type": "json", "value": 3}, {"type": "file", "storage": "/r", "key": "k", "serializer": "json"}]
    )
    def test_a_task_completing_with_a_key_and_a_persisted_result_is_cached(self, make_task_run, result):
        key, expires = _key(), timezone.now() + timedelta(hours=1)
        run = make_task_run(S.PENDING, S.RUNNING)

        answer = propose(run, _completed(key, result, cache_expiration=expires))

        assert answer.status == ACCEPT
        entries = list(TaskCacheEntry.objects.filter(cache_key=key))
        assert [(e.state_id, e.expiration) for e in entries] == [(answer.state.id, expires)]

    def test_a_task_completing_without_a_key_is_not_cached(self, make_task_run):
        run = make_task_run(S.PENDING, S.RUNNING)

        answer = propose(run, _completed(None))

        assert answer.status == ACCEPT
        assert not TaskCacheEntry.objects.filter(state_id=answer.state.id).exists()

    def test_a_result_that_was_not_persisted_is_not_cached(self, make_task_run):
        key = _key()
        run = make_task_run(S.PENDING, S.RUNNING)

        answer = propose(run, _completed(key, {"type": "unpersisted"}))

        assert answer.status == ACCEPT
        assert not TaskCacheEntry.objects.filter(cache_key=key).exists()

    def test_a_result_served_from_the_cache_is_not_cached_again(self, make_task_run):
        key = _key()
        _cache(make_task_run, key)

        answer = propose(make_task_run(S.PENDING), S.RUNNING, cache_key=key)

        assert answer.state.name == "Cached"
        assert TaskCacheEntry.objects.filter(cache_key=key).count() == 1

    def test_a_refreshed_result_is_cached_alongside_the_old_one(self, make_task_run):
        key = _key()
        _cache(make_task_run, key, value="old")
        run = make_task_run(S.PENDING)
        propose(run, S.RUNNING, cache_key=key, refresh_cache=True)

        propose(run, _completed(key, {"type": "json", "value": "new"}))

        assert TaskCacheEntry.objects.filter(cache_key=key).count() == 2
        assert propose(make_task_run(S.PENDING), S.RUNNING, cache_key=key).state.result["value"] == "new"

    def test_a_flow_run_completing_with_a_key_is_not_cached(self, make_flow_run):
        key = _key()

        propose(make_flow_run(S.PENDING, S.RUNNING), _completed(key))

        assert not TaskCacheEntry.objects.filter(cache_key=key).exists()


class TestCrashTaskRunsLeftRunning:
    @pytest.fixture
    def running_and_pending(self, make_flow_run, make_task_run):
        def make(**policy):
            flow_run = make_flow_run(S.PENDING, S.RUNNING, **policy)
            running = make_task_run(S.PENDING, S.RUNNING, flow_run=flow_run)
            pending = make_task_run(S.PENDING, flow_run=flow_run)
            return flow_run, running, pending

        return make

    @pytest.mark.parametrize("final", [S.COMPLETED, S.FAILED])
    def test_a_flow_run_ending_with_a_task_run_still_running_crashes_that_task_run(self, running_and_pending, final):
        flow_run, running, pending = running_and_pending()

        answer = propose(flow_run, final)

        assert (answer.status, answer.state.type) == (ACCEPT, final)
        task_run = fresh(running)
        assert task_run.state_type == S.CRASHED
        assert task_run.state.message == (
            f"Flow run {flow_run.name!r} ended {final.value.title()} while this task run was Running: "
            "its engine was interrupted"
        )
        assert fresh(pending).state_type == S.PENDING

    def test_a_flow_run_about_to_retry_keeps_its_running_task_runs(self, running_and_pending):
        flow_run, running, _ = running_and_pending(retries=1)
        fresh_run = fresh(flow_run)
        assert fresh_run.run_count == 1

        answer = propose(flow_run, S.FAILED)

        assert (answer.status, answer.state.name) == (REJECT, "AwaitingRetry")
        assert fresh(running).state_type == S.RUNNING


class TestFinishUnfinishedTaskRuns:
    @pytest.fixture
    def flow_run_with_tasks(self, make_flow_run, make_task_run):
        """A flow run (with `pid`) and task runs in every state a task can be in while its flow runs."""

        def make(*flow_path: StateType, pid: int | None = None):
            flow_run = make_flow_run(S.PENDING, S.RUNNING, pid=pid)
            paths = {
                "pending": (S.PENDING,), "running": (S.PENDING, S.RUNNING), "awaiting": (S.SCHEDULED,),
                "paused": (S.PENDING, S.PAUSED), "cancelling": (S.PENDING, S.RUNNING, S.CANCELLING),
                "completed": (S.PENDING, S.RUNNING, S.COMPLETED), "failed": (S.PENDING, S.RUNNING, S.FAILED),
            }  # fmt: skip
            tasks = {name: make_task_run(*path, flow_run=flow_run) for name, path in paths.items()}
            for state_type in flow_path:
                propose(flow_run, state_type, force=True)
            return fresh(flow_run), tasks

        return make

    @staticmethod
    def _states(tasks: dict[str, TaskRun]) -> dict[str, tuple[str, str]]:
        return {name: (fresh(t).state_type, t.state.message) for name, t in tasks.items()}

    def test_a_crashed_flow_run_crashes_its_unfinished_task_runs(self, flow_run_with_tasks):
        flow_run, tasks = flow_run_with_tasks()

        answer = propose(flow_run, State(S.CRASHED, message="out of memory"))

        assert (answer.status, answer.state.type) == (ACCEPT, S.CRASHED)
        said = f"Flow run {flow_run.name!r} crashed: out of memory"
        assert self._states(tasks) == {
            **{name: (S.CRASHED, said) for name in ("pending", "running", "awaiting", "paused", "cancelling")},
            "completed": (S.COMPLETED, ""), "failed": (S.FAILED, ""),
        }  # fmt: skip
        assert rows(tasks["running"]) == 3 and rows(tasks["completed"]) == 3

    def test_a_cancelled_flow_run_cancels_its_unfinished_task_runs(self, flow_run_with_tasks):
        flow_run, tasks = flow_run_with_tasks(S.CANCELLING)
        assert fresh(tasks["running"]).state_type == S.RUNNING  # Cancelling alone leaves them to the process

        answer = propose(flow_run, S.CANCELLED)

        assert (answer.status, answer.state.type) == (ACCEPT, S.CANCELLED)
        said = f"Flow run {flow_run.name!r} was cancelled: Cancelled"
        states = self._states(tasks)
        assert states["running"] == states["awaiting"] == states["cancelling"] == (S.CANCELLED, said)
        assert states["completed"] == (S.COMPLETED, "")

    def test_a_paused_flow_run_cancelled_directly_cancels_its_task_runs(self, flow_run_with_tasks):
        flow_run, tasks = flow_run_with_tasks(S.PAUSED)

        answer = propose(flow_run, S.CANCELLING)

        assert (answer.status, answer.state.type) == (REJECT, S.CANCELLED)
        states = self._states(tasks)
        assert {name: t for name, (t, _) in states.items()} == {
            **dict.fromkeys(["pending", "running", "awaiting", "paused", "cancelling"], S.CANCELLED),
            "completed": S.COMPLETED, "failed": S.FAILED,
        }  # fmt: skip

    def test_a_flow_run_forced_to_crashed_crashes_its_task_runs(self, flow_run_with_tasks):
        flow_run, tasks = flow_run_with_tasks()

        answer = propose(flow_run, State(S.CRASHED, message="its process is gone"), force=True)

        assert answer.status == ACCEPT
        said = f"Flow run {flow_run.name!r} crashed: its process is gone"
        assert self._states(tasks)["awaiting"] == (S.CRASHED, said)
        assert fresh(tasks["completed"]).state_type == S.COMPLETED

    def test_a_failed_flow_run_leaves_its_task_runs_that_are_not_running_as_they_are(self, flow_run_with_tasks):
        flow_run, tasks = flow_run_with_tasks()

        propose(flow_run, S.FAILED)

        assert fresh(tasks["awaiting"]).state_type == S.SCHEDULED
        assert fresh(tasks["pending"]).state_type == S.PENDING
        assert fresh(tasks["paused"]).state_type == S.PAUSED

    def test_a_cancelling_flow_run_leaves_its_task_runs_to_its_process(self, flow_run_with_tasks):
        flow_run, tasks = flow_run_with_tasks()

        answer = propose(flow_run, S.CANCELLING)

        assert answer.status == ACCEPT
        assert fresh(tasks["running"]).state_type == S.RUNNING


class TestForceBypassesTheCoreRules:
    """force=True runs MINIMAL_POLICY: no core rule answers, bookkeeping and idempotency stay."""

    def test_an_illegal_transition_is_accepted(self, make_run):
        run = make_run(S.PENDING, S.RUNNING, S.COMPLETED)

        answer = propose(run, S.RUNNING, force=True)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")
        run = fresh(run)
        assert (run.state_type, run.run_count, run.end_time) == (S.RUNNING, 1, None)

    def test_a_failure_with_retries_left_is_not_retried(self, make_run):
        answer = propose(make_run(S.PENDING, S.RUNNING, retries=3), S.FAILED, force=True)

        assert (answer.status, answer.state.type) == (ACCEPT, S.FAILED)

    def test_a_run_is_started_before_its_scheduled_time(self, new_run):
        run, _ = new_run(State(S.SCHEDULED, details=StateDetails(scheduled_time=timezone.now() + timedelta(hours=1))))

        answer = propose(run, S.RUNNING, force=True)

        assert (answer.status, answer.state.type) == (ACCEPT, S.RUNNING)
        assert fresh(run).start_time is not None

    def test_a_pending_run_is_made_pending_again(self, make_run):
        answer = propose(make_run(S.PENDING), S.PENDING, force=True)

        assert answer.status == ACCEPT

    def test_a_task_starts_in_a_flow_run_that_is_not_running(self, make_task_run):
        answer = propose(make_task_run(S.PENDING, flow_state=S.COMPLETED), S.RUNNING, force=True)

        assert (answer.status, answer.state.type) == (ACCEPT, S.RUNNING)

    def test_a_cached_result_is_not_served(self, make_task_run):
        key = _key()
        _cache(make_task_run, key)

        answer = propose(make_task_run(S.PENDING), S.RUNNING, force=True, cache_key=key)

        assert (answer.status, answer.state.name) == (ACCEPT, "Running")

    def test_a_scheduled_flow_run_goes_to_cancelling(self, make_flow_run):
        answer = propose(make_flow_run(S.SCHEDULED), S.CANCELLING, force=True)

        assert (answer.status, answer.state.type) == (ACCEPT, S.CANCELLING)

    def test_a_run_not_scheduled_may_be_marked_late(self, make_run):
        answer = propose(make_run(S.PENDING, S.RUNNING), State(S.SCHEDULED, name="Late"), force=True)

        assert (answer.status, answer.state.name) == (ACCEPT, "Late")


class TestAbortSupersededProposals:
    def test_a_proposal_following_the_current_state_is_applied(self, make_task_run):
        run = make_task_run(S.PENDING, S.RUNNING)

        answer = propose(run, S.COMPLETED, from_state_id=str(fresh(run).state_id))

        assert (answer.status, answer.state.type) == (ACCEPT, S.COMPLETED)

    def test_a_proposal_following_a_state_the_run_has_left_is_aborted_and_changes_nothing(self, make_task_run):
        run = make_task_run(S.PENDING, S.RUNNING, retries=1)
        first_attempt = str(fresh(run).state_id)
        propose(run, State(S.CRASHED, message="worker quiet"), force=True)
        propose(run, State(S.SCHEDULED, name="AwaitingRetry"), force=True)
        retry = propose(run, S.RUNNING)
        assert retry.state.name == "Retrying"

        stale = propose(run, S.COMPLETED, from_state_id=first_attempt)

        assert stale.status == ABORT and stale.state.id == retry.state.id
        assert stale.reason.startswith(f"this proposal follows state {first_attempt}, but the run has moved on to Retrying")
        assert history(run) == ["Pending", "Running", "Crashed", "AwaitingRetry", "Retrying"]

    def test_a_forced_proposal_from_a_superseded_attempt_is_aborted_too(self, make_task_run):
        run = make_task_run(S.PENDING, S.RUNNING)
        first_attempt = str(fresh(run).state_id)
        propose(run, S.COMPLETED)

        answer = propose(run, State(S.CRASHED, details=StateDetails(from_state_id=first_attempt)), force=True)

        assert answer.status == ABORT and fresh(run).state_type == S.COMPLETED
