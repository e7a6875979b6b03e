"""SecureTaskConcurrencySlots and the bookkeeping that gives slots back, through the real services.

(Kept apart from test_core.py, which is long; test_docs.py finds rule tests in both.)
"""
from __future__ import annotations

import threading
import uuid

import pytest
from django.conf import settings
from django.db import connection

from orchestrator.limits.models import ConcurrencySlot
from orchestrator.limits.services import concurrency_limit_create, concurrency_limit_delete
from orchestrator.runs import claims, services
from orchestrator.schemas import SetStateStatus, State, StateType
from tests.orchestrator.rules.helpers import fresh, history, propose

S = StateType
ACCEPT, WAIT, ABORT = SetStateStatus.ACCEPT, SetStateStatus.WAIT, SetStateStatus.ABORT


@pytest.fixture
def tag() -> str:
    return f"db-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def tagged(make_flow_run):
    """tagged(*tags, retries=0): a Pending task run with these tags in a Running flow run."""
    flow_run = make_flow_run(S.PENDING, S.RUNNING)

    def make(*tags: str, retries: int = 0):
        run, _ = services.task_run_create(
            flow_run_id=flow_run.id, task_key="tests.limited", dynamic_key=uuid.uuid4().hex[:6], name="limited",
            state=State(S.PENDING), tags=tags, empirical_policy={"retries": retries, "retry_delay": 0},
        )  # fmt: skip
        return run

    return make


def held(tag: str) -> int:
    return ConcurrencySlot.objects.filter(limit__tag=tag).count()


class TestSecureTaskConcurrencySlots:
    def test_runs_take_slots_until_the_limit_then_wait(self, tagged, tag, monkeypatch):
        monkeypatch.setattr(settings, "RUNWAY_TASK_CONCURRENCY_WAIT_SECONDS", 1.5)
        concurrency_limit_create(tag=tag, limit=2)
        first, second, third = tagged(tag), tagged(tag), tagged(tag)

        assert propose(first, S.RUNNING).status == ACCEPT
        assert propose(second, S.RUNNING).status == ACCEPT
        answer = propose(third, S.RUNNING)

        assert (answer.status, answer.delay_seconds, answer.state.type) == (WAIT, 1.5, S.PENDING)
        assert answer.reason == f"concurrency limit of tag {tag!r} reached (2/2 running); trying again in 1.5 s"
        assert history(third) == ["Pending"]
        assert held(tag) == 2

    def test_a_slot_freed_by_a_finished_run_goes_to_the_next_that_asks(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=1)
        first, second = tagged(tag), tagged(tag)
        propose(first, S.RUNNING)
        assert propose(second, S.RUNNING).status == WAIT

        propose(first, S.COMPLETED)

        assert propose(second, S.RUNNING).status == ACCEPT
        assert list(ConcurrencySlot.objects.filter(limit__tag=tag).values_list("task_run_id", flat=True)) == [second.id]

    def test_a_run_needs_a_slot_of_every_limited_tag_and_takes_none_while_one_is_full(self, tagged, tag):
        other = tag + "-other"
        concurrency_limit_create(tag=tag, limit=5)
        concurrency_limit_create(tag=other, limit=1)
        propose(tagged(other), S.RUNNING)

        answer = propose(tagged(tag, other), S.RUNNING)

        assert answer.status == WAIT and repr(other) in answer.reason
        assert held(tag) == 0  # nothing taken from the limit that had room

    def test_a_limit_of_zero_aborts_instead_of_waiting_forever(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=0)

        answer = propose(tagged(tag), S.RUNNING)

        assert answer.status == ABORT
        assert f"concurrency limit of tag {tag!r} is 0" in answer.reason
        assert f"concurrency-limit create {tag} N" in answer.reason

    def test_tags_without_a_limit_and_untagged_runs_are_not_limited(self, tagged, tag):
        assert propose(tagged(tag), S.RUNNING).status == ACCEPT
        assert propose(tagged(), S.RUNNING).status == ACCEPT
        assert held(tag) == 0

    def test_deleting_the_limit_lets_waiting_runs_start(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=1)
        propose(tagged(tag), S.RUNNING)
        waiting = tagged(tag)
        assert propose(waiting, S.RUNNING).status == WAIT

        concurrency_limit_delete(tag=tag)

        assert propose(waiting, S.RUNNING).status == ACCEPT

    def test_a_slot_taken_for_a_proposal_that_is_then_not_written_is_given_back(self, tagged, tag):
        """A duplicate of the proposal that started the run is replayed, not run through the rule again."""
        concurrency_limit_create(tag=tag, limit=1)
        run = tagged(tag)
        propose(run, S.RUNNING, transition_key="start")

        again = propose(run, S.RUNNING, transition_key="start")

        assert again.status == ACCEPT
        assert held(tag) == 1

    def test_a_slot_of_a_run_that_left_running_without_giving_it_back_is_not_counted(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=1)
        gone = tagged(tag)
        propose(gone, S.RUNNING)
        # As if the run had left Running by a path that skipped the services (a row edited by hand).
        type(gone).objects.filter(pk=gone.pk).update(state_type=S.CRASHED.value)

        assert propose(tagged(tag), S.RUNNING).status == ACCEPT
        assert not ConcurrencySlot.objects.filter(task_run_id=gone.id).exists()

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serializes writers; the race needs PostgreSQL")
    def test_concurrent_proposals_never_take_more_slots_than_the_limit(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=3)
        runs = [tagged(tag) for _ in range(12)]
        answers: list = []
        barrier = threading.Barrier(len(runs))

        def start(run) -> None:
            barrier.wait()
            try:
                answers.append(propose(run, S.RUNNING).status)
            finally:
                connection.close()

        threads = [threading.Thread(target=start, args=(run,)) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(answers, key=str).count(ACCEPT) == 3
        assert answers.count(WAIT) == 9
        assert held(tag) == 3


class TestReleaseConcurrencySlots:
    @pytest.mark.parametrize("final", [S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLED])
    def test_a_run_leaving_running_gives_its_slots_back(self, tagged, tag, final):
        concurrency_limit_create(tag=tag, limit=1)
        run = tagged(tag)
        propose(run, S.RUNNING)

        propose(run, final)

        assert held(tag) == 0

    def test_a_failed_run_waiting_to_retry_does_not_hold_a_slot(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=1)
        run = tagged(tag, retries=1)
        propose(run, S.RUNNING)

        answer = propose(run, S.FAILED)

        assert answer.state.name == "AwaitingRetry"
        assert held(tag) == 0
        assert propose(run, S.RUNNING).state.name == "Retrying"
        assert held(tag) == 1

    def test_a_forced_crash_gives_the_slot_back(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=1)
        run = tagged(tag)
        propose(run, S.RUNNING)

        propose(run, State(S.CRASHED, message="the process died"), force=True)

        assert held(tag) == 0

    def test_a_run_whose_worker_vanished_gives_its_slot_back_when_swept(self, tagged, tag):
        concurrency_limit_create(tag=tag, limit=1)
        run = tagged(tag)
        assert claims.task_run_claim(task_run_id=run.id, worker="w/1", hostname="h", pid=1, dispatch=None,
                                     timeout=30).status == "claimed"  # fmt: skip
        propose(run, S.RUNNING)
        type(run).objects.filter(pk=run.pk).update(heartbeat=fresh(run).heartbeat.replace(year=2000))

        claims.task_runs_sweep_lost(timeout=30)

        assert fresh(run).state_type == S.CRASHED
        assert held(tag) == 0

    def test_a_crashed_flow_run_frees_the_slots_of_its_task_runs(self, make_flow_run, tag):
        concurrency_limit_create(tag=tag, limit=1)
        flow_run = make_flow_run(S.PENDING, S.RUNNING)
        run, _ = services.task_run_create(flow_run_id=flow_run.id, task_key="tests.limited", dynamic_key="0",
                                          name="limited", state=State(S.PENDING), tags=[tag],
                                          then=State(S.RUNNING))  # fmt: skip
        assert held(tag) == 1

        propose(flow_run, State(S.CRASHED, message="killed"))

        assert fresh(run).state_type == S.CRASHED
        assert held(tag) == 0

    def test_a_run_created_running_in_one_call_takes_its_slot_or_waits(self, make_flow_run, tag):
        concurrency_limit_create(tag=tag, limit=1)
        flow_run = make_flow_run(S.PENDING, S.RUNNING)

        answers = [
            services.task_run_create(flow_run_id=flow_run.id, task_key="tests.limited", dynamic_key=str(i),
                                     name="limited", state=State(S.PENDING), tags=[tag], then=State(S.RUNNING))[1]
            for i in range(2)
        ]  # fmt: skip

        assert [a.status for a in answers] == [ACCEPT, WAIT]
        assert answers[1].state.type == S.PENDING
