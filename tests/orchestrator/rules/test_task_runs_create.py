"""task_runs_create: many task runs through the creation policy in one transaction (what task.map() uses)."""
from __future__ import annotations

import uuid

import pytest

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.runs import services
from orchestrator.runs.models import TaskRun
from orchestrator.schemas import SetStateStatus, State, StateType

S = StateType


def _items(flow_run, count: int, key: str | None = None, **extra) -> list[dict]:
    key = key or f"tests.map-{uuid.uuid4().hex[:6]}"
    return [
        {"flow_run_id": flow_run.id if flow_run else None, "task_key": key, "dynamic_key": str(i),
         "name": f"map-{i}", "state": State(S.PENDING), **extra}
        for i in range(count)
    ]  # fmt: skip


class TestCreatesEveryRun:
    def test_each_run_is_created_pending_with_one_state_and_answered_in_order(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING)
        items = _items(flow_run, 5, tags=["a"], empirical_policy={"retries": 2}, hostname="h", pid=7)

        answers = services.task_runs_create(runs=items)

        assert [answer.status for _, answer in answers] == [SetStateStatus.ACCEPT] * 5
        runs = {run.id: run for run in TaskRun.objects.filter(flow_run_id=flow_run.id)}
        assert [runs[run_id].name for run_id, _ in answers] == [f"map-{i}" for i in range(5)]
        for run_id, answer in answers:
            run = runs[run_id]
            assert [s.type for s in run.states.all()] == [S.PENDING]
            assert (run.state_id, run.state_type, run.state_name) == (answer.state.id, S.PENDING, "Pending")
            assert (run.tags, run.empirical_policy, run.hostname, run.pid) == (["a"], {"retries": 2}, "h", 7)
            assert run.expected_start_time == answer.state.timestamp

    def test_the_ids_the_client_chose_are_kept(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING)
        ids = [uuid.uuid4() for _ in range(3)]
        items = [{**item, "run_id": run_id} for item, run_id in zip(_items(flow_run, 3), ids)]

        assert [run_id for run_id, _ in services.task_runs_create(runs=items)] == ids

    def test_then_is_proposed_in_the_same_call_and_answered(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING)

        [(run_id, answer)] = services.task_runs_create(runs=_items(flow_run, 1, then=State(S.RUNNING)))

        assert (answer.status, answer.state.type) == (SetStateStatus.ACCEPT, S.RUNNING)
        run = TaskRun.objects.get(id=run_id)
        assert [s.type for s in run.states.order_by("timestamp")] == [S.PENDING, S.RUNNING]
        assert (run.state_type, run.run_count) == (S.RUNNING, 1)

    def test_then_is_decided_by_the_rules_for_each_run(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING)  # not Running: its task runs may not start

        [(_, answer)] = services.task_runs_create(runs=_items(flow_run, 1, then=State(S.RUNNING)))

        assert answer.status == SetStateStatus.ABORT
        assert answer.state.type == S.PENDING

    def test_runs_outside_any_flow_run_are_created(self):
        answers = services.task_runs_create(runs=_items(None, 2))

        assert TaskRun.objects.filter(id__in=[run_id for run_id, _ in answers], flow_run_id=None).count() == 2

    def test_a_batch_larger_than_one_statement_carries_is_stored_whole(self, make_flow_run):
        """Rows go in multi-row statements of at most 10,000 parameters: about 450 runs each."""
        flow_run = make_flow_run(S.PENDING, S.RUNNING)

        answers = services.task_runs_create(runs=_items(flow_run, 2000))

        runs = TaskRun.objects.filter(flow_run_id=flow_run.id)
        assert runs.count() == 2000
        assert set(runs.values_list("id", flat=True)) == {run_id for run_id, _ in answers}
        assert sorted(int(key) for key in runs.values_list("dynamic_key", flat=True)) == list(range(2000))
        assert set(runs.values_list("state_type", flat=True)) == {S.PENDING}

    def test_no_runs_is_no_call(self):
        assert services.task_runs_create(runs=[]) == []


class TestRetriedFlowRun:
    def test_a_second_call_with_the_same_keys_finds_the_runs_the_first_made(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING)
        items = _items(flow_run, 3)
        first = services.task_runs_create(runs=items)

        again = services.task_runs_create(runs=[{**item, "run_id": uuid.uuid4()} for item in items])

        assert [run_id for run_id, _ in again] == [run_id for run_id, _ in first]
        assert TaskRun.objects.filter(flow_run_id=flow_run.id).count() == 3
        assert all(answer.state.id == earlier.state.id for (_, answer), (_, earlier) in zip(again, first))

    def test_new_and_existing_runs_mix_in_one_call(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING)
        items = _items(flow_run, 4)
        first = services.task_runs_create(runs=items[:2])

        answers = services.task_runs_create(runs=items)

        assert [run_id for run_id, _ in answers[:2]] == [run_id for run_id, _ in first]
        assert TaskRun.objects.filter(flow_run_id=flow_run.id).count() == 4

    def test_an_existing_run_is_proposed_then_again(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING)
        items = _items(flow_run, 1)
        [(run_id, _)] = services.task_runs_create(runs=items)

        [(again_id, answer)] = services.task_runs_create(runs=[{**items[0], "then": State(S.RUNNING)}])

        assert (again_id, answer.state.type) == (run_id, S.RUNNING)


class TestRejectsBadInput:
    def test_a_missing_argument_is_named_with_the_position_of_its_item(self, make_flow_run):
        items = _items(make_flow_run(S.PENDING, S.RUNNING), 2)
        del items[1]["task_key"]

        with pytest.raises(InvalidInput, match=r"task run 1: lacks task_key"):
            services.task_runs_create(runs=items)

    def test_an_unknown_argument_is_named(self, make_flow_run):
        items = _items(make_flow_run(S.PENDING, S.RUNNING), 1, colour="blue")

        with pytest.raises(InvalidInput, match=r"task run 0: has unknown argument\(s\) colour"):
            services.task_runs_create(runs=items)

    def test_a_state_that_is_not_a_state_is_refused(self, make_flow_run):
        items = _items(make_flow_run(S.PENDING, S.RUNNING), 1)
        items[0]["state"] = "PENDING"

        with pytest.raises(InvalidInput, match=r"task run 0: state must be a State, got 'PENDING'"):
            services.task_runs_create(runs=items)

    def test_an_item_that_is_not_a_dict_is_refused(self):
        with pytest.raises(InvalidInput, match=r"task run 0: expected a dict"):
            services.task_runs_create(runs=[("not", "a dict")])

    def test_an_illegal_first_state_fails_the_whole_batch(self, make_flow_run):
        flow_run = make_flow_run(S.PENDING, S.RUNNING)
        items = _items(flow_run, 3)
        items[2]["state"] = State(S.COMPLETED)

        with pytest.raises(InvalidInput, match=r"task run 2 \('map-2'\): a new task run cannot start as Completed"):
            services.task_runs_create(runs=items)
        assert TaskRun.objects.filter(flow_run_id=flow_run.id).count() == 0

    def test_an_unknown_flow_run_is_not_found(self):
        missing = uuid.uuid4()
        items = [{**item, "flow_run_id": missing} for item in _items(None, 2)]

        with pytest.raises(ObjectNotFound, match=f"flow run {missing} does not exist"):
            services.task_runs_create(runs=items)
