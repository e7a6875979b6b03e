"""Which state changes make deliveries: by flow, tag, deployment and state (Late included), once per
transition, for flow runs only, in the state's own transaction."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestrator.deployments.agents import mark_late_runs
from orchestrator.deployments.services import deployment_create, deployment_run_create, work_queue_create
from orchestrator.notifications import triggers
from orchestrator.notifications.models import NotificationDelivery
from orchestrator.runs.models import FlowRunState
from orchestrator.runs.services import flow_run_set_state, task_run_create, task_run_set_state
from orchestrator.schemas import SetStateStatus, State, StateDetails, StateType
from tests.notifications.conftest import deliveries_of

P, R, C, F = StateType.PENDING, StateType.RUNNING, StateType.COMPLETED, StateType.FAILED
HOOK = "https://hooks.example.test/x"


def test_a_rule_fires_for_the_states_it_watches_of_the_flows_it_watches(make_rule, make_run):
    rule = make_rule(channel="webhook", target=HOOK, states=["Failed", "Completed"])
    failed = make_run(P, R, F)
    completed = make_run(P, R, C)
    make_run(P, R, C, flow=f"other-{uuid.uuid4().hex[:6]}")  # another flow

    made = deliveries_of(rule)
    assert [(d.flow_run_id, d.state_name, d.status) for d in made] == [(failed.id, "Failed", "pending"),
                                                                        (completed.id, "Completed", "pending")]  # fmt: skip
    state = FlowRunState.objects.get(pk=made[0].state_id)
    assert (state.flow_run_id, state.name) == (failed.id, "Failed")


def test_a_type_fires_on_its_named_states_and_a_name_only_on_itself(make_rule, make_run):
    by_type = make_rule(channel="webhook", target=HOOK, states=["Failed", "Scheduled"])
    by_name = make_rule(channel="webhook", target=HOOK, states=["TimedOut", "Late"])
    timed_out = make_run(P, R, State(F, name="TimedOut", message="took too long"))
    make_run(P, R, F)
    make_run(State(StateType.SCHEDULED, name="AwaitingRetry"))

    assert sorted(d.state_name for d in deliveries_of(by_type)) == ["AwaitingRetry", "Failed", "TimedOut"]
    assert [(d.flow_run_id, d.state_name) for d in deliveries_of(by_name)] == [(timed_out.id, "TimedOut")]


def test_tags_match_any_of_them_and_an_empty_filter_matches_any_run(make_rule, make_run, flow_name):
    tagged = make_rule(channel="webhook", target=HOOK, tags=["etl", "nightly"])
    any_run = make_rule(channel="webhook", target=HOOK)
    etl = make_run(P, F, tags=["etl"])
    both = make_run(P, F, tags=["nightly", "etl"])
    make_run(P, F, tags=["adhoc"])

    assert {d.flow_run_id for d in deliveries_of(tagged)} == {etl.id, both.id}
    assert len(deliveries_of(any_run)) == 3


def test_deployment_rules_fire_for_its_runs_and_late_is_found_by_the_sweep(make_rule):
    queue = f"nq-{uuid.uuid4().hex[:6]}"
    work_queue_create(name=queue)
    flow = f"nd-{uuid.uuid4().hex[:6]}"
    watched, _ = deployment_create(flow_name=flow, name="watched", entrypoint="f.py:f", code_path="/c",
                                   code_version="c" * 64, work_queue_name=queue)  # fmt: skip
    other, _ = deployment_create(flow_name=flow, name="other", entrypoint="f.py:f", code_path="/c",
                                 code_version="c" * 64, work_queue_name=queue)  # fmt: skip
    rule = make_rule(channel="webhook", target=HOOK, states=["Late"], flow_names=[], deployments=[str(watched)])
    overdue = timezone.now() - timedelta(minutes=5)
    late = deployment_run_create(ref=str(watched), scheduled_time=overdue)
    deployment_run_create(ref=str(other), scheduled_time=overdue)
    deployment_run_create(ref=str(watched))  # due now: not Late yet

    assert mark_late_runs(late_after=60) >= 2
    assert [(d.flow_run_id, d.state_type, d.state_name) for d in deliveries_of(rule)] == [(late.id, "SCHEDULED", "Late")]
    assert mark_late_runs(late_after=60) == 0 and len(deliveries_of(rule)) == 1  # Late once


def test_a_transition_proposed_twice_is_notified_once(make_rule, make_run):
    rule = make_rule(channel="webhook", target=HOOK)
    run = make_run(P, R)
    failed = State(F, message="boom", details=StateDetails(transition_key="attempt-1-end"))
    first = flow_run_set_state(flow_run_id=run.id, state=failed)
    again = flow_run_set_state(flow_run_id=run.id, state=failed)  # a client retrying a lost answer

    assert (first.status, again.status, again.state.id) == (SetStateStatus.ACCEPT, SetStateStatus.ACCEPT, first.state.id)
    assert [d.state_id for d in deliveries_of(rule)] == [first.state.id]


def test_a_run_failing_again_after_a_retry_is_a_new_transition(make_rule, make_run):
    rule = make_rule(channel="webhook", target=HOOK)
    run = make_run(P, R, F, State(StateType.SCHEDULED, name="AwaitingRetry"), R, F)
    assert [d.flow_run_id for d in deliveries_of(rule)] == [run.id, run.id]
    assert len({d.state_id for d in deliveries_of(rule)}) == 2


def test_disabled_rules_and_task_runs_make_no_deliveries(make_rule, make_run):
    disabled = make_rule(channel="webhook", target=HOOK, enabled=False)
    enabled = make_rule(channel="webhook", target=HOOK, states=["Failed", "Running"])
    flow_run = make_run(P, R)
    task_run, _ = task_run_create(flow_run_id=flow_run.id, task_key="t", dynamic_key="0", name="t-0",
                                  state=State(P), then=State(R))  # fmt: skip
    task_run_set_state(task_run_id=task_run.id, state=State(F))

    assert deliveries_of(disabled) == []
    assert [d.state_name for d in deliveries_of(enabled)] == ["Running"]  # the flow run's, not the task run's


def test_a_rule_saved_here_applies_at_once_and_one_disabled_elsewhere_stops_firing(make_rule, make_run, settings_override):
    settings_override(RUNWAY_NOTIFICATION_RULE_CACHE_SECONDS=3600.0)
    triggers.enabled_watches()
    rule = make_rule(channel="webhook", target=HOOK)
    make_run(P, F)
    assert len(deliveries_of(rule)) == 1
    type(rule).objects.filter(pk=rule.pk).update(enabled=False)  # as another process would, leaving this cache stale
    make_run(P, F)
    assert len(deliveries_of(rule)) == 1  # rules are read again before deliveries are made


def test_a_state_no_rule_watches_costs_no_query(make_rule, make_run, settings_override):
    settings_override(RUNWAY_NOTIFICATION_RULE_CACHE_SECONDS=3600.0)
    make_rule(channel="webhook", target=HOOK, states=["Crashed"])
    run = make_run(P)
    triggers.enabled_watches()
    with CaptureQueriesContext(connection) as queries:
        flow_run_set_state(flow_run_id=run.id, state=State(R))
    assert not [q for q in queries.captured_queries if "notification" in q["sql"]]


def test_a_failure_in_the_notifications_never_undoes_the_state(make_rule, make_run, monkeypatch):
    rule = make_rule(channel="webhook", target=HOOK)
    run = make_run(P, R)

    def broken(*args, **kwargs):
        raise RuntimeError("the notifications table is on fire")

    monkeypatch.setattr(NotificationDelivery.objects, "bulk_create", broken)
    answer = flow_run_set_state(flow_run_id=run.id, state=State(F))
    assert answer.status == SetStateStatus.ACCEPT
    assert type(run).objects.get(pk=run.id).state_name == "Failed" and deliveries_of(rule) == []


@pytest.mark.parametrize("rules", [0, 20])
def test_matching_a_state_costs_microseconds_not_queries(rules, make_rule, settings_override):
    settings_override(RUNWAY_NOTIFICATION_RULE_CACHE_SECONDS=3600.0)
    for _ in range(rules):
        make_rule(channel="webhook", target=HOOK, states=["Crashed"])
    triggers.enabled_watches()
    state = State(R, id=uuid.uuid4())
    started = time.perf_counter()
    for _ in range(10_000):
        triggers.flow_run_state_written(flow_run_id=uuid.uuid4(), state=state)
    assert (time.perf_counter() - started) / 10_000 < 50e-6
