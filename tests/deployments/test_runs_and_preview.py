"""Runs of a deployment (parameters merged and checked, the queue and code version recorded, one run
per idempotency key) and `work-queue preview` (soonest first, Late marked, filters honoured)."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from orchestrator.deployments.services import deployment_create, deployment_run_create, work_queue_create
from orchestrator.exceptions import InvalidInput
from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_run_set_state
from orchestrator.schemas import State, StateType
from tests.deployments.test_deploy import command

SCHEMA = {"properties": {"msg": {}, "count": {"default": 1}}, "required": ["msg"], "additionalProperties": False}


@pytest.fixture
def deployment():
    """deployment(queue=None, tags=(), parameters={"msg": "hi"}): a deployment of a new flow."""

    def make(queue: str | None = None, tags=(), parameters=None):
        found, _ = deployment_create(
            flow_name=f"runs-{uuid.uuid4().hex[:6]}", name="d", entrypoint="f.py:f", code_path="/code",
            code_version="a" * 64, parameters={"msg": "hi"} if parameters is None else parameters,
            parameter_schema=SCHEMA, tags=tags, work_queue_name=queue,
        )  # fmt: skip
        return found

    return make


def test_a_run_of_a_deployment_merges_its_parameters_and_records_queue_and_code(deployment):
    queue = f"q-{uuid.uuid4().hex[:6]}"
    work_queue_create(name=queue)
    found = deployment(queue=queue)

    run = deployment_run_create(ref=str(found), parameters={"count": 3})

    run.refresh_from_db()
    assert (run.state_type, run.state_name) == ("SCHEDULED", "Scheduled")
    assert run.parameters == {"msg": "hi", "count": 3}
    assert (run.deployment_id, run.work_queue_name, run.code_version) == (found.id, queue, "a" * 64)
    assert run.next_scheduled_start_time <= timezone.now()


def test_bad_parameters_are_refused_naming_them(deployment):
    found = deployment(parameters={})
    with pytest.raises(InvalidInput, match="missing parameter\\(s\\) 'msg'"):
        deployment_run_create(ref=str(found))
    with pytest.raises(InvalidInput, match="unknown parameter\\(s\\) 'colour'; the flow takes: msg, count"):
        deployment_run_create(ref=str(found), parameters={"msg": "x", "colour": "red"})
    assert not found.flow_runs.exists()


def test_one_run_per_idempotency_key(deployment):
    found = deployment()
    first = deployment_run_create(ref=str(found), idempotency_key="slot-1")
    again = deployment_run_create(ref=str(found), idempotency_key="slot-1")
    assert first.id == again.id and found.flow_runs.count() == 1


def test_preview_lists_the_queue_s_scheduled_runs_soonest_first_with_late_ones_marked(deployment):
    queue, tag = f"q-{uuid.uuid4().hex[:6]}", f"ETL-{uuid.uuid4().hex[:6]}"  # a tag no other test's deployment has
    work_queue_create(name=queue, tags=[tag])
    own, by_tag, other = deployment(queue=queue), deployment(tags=[tag, "x"]), deployment(tags=["x"])
    now = timezone.now()
    later = deployment_run_create(ref=str(own), scheduled_time=now + timedelta(hours=1), name="later")
    late = deployment_run_create(ref=str(by_tag), scheduled_time=now - timedelta(minutes=5), name="late")
    deployment_run_create(ref=str(other), name="not-this-queue")
    started = deployment_run_create(ref=str(own), name="started")
    flow_run_set_state(flow_run_id=started.id, state=State(StateType.PENDING))

    rows = json.loads(command("work-queue", "preview", queue, "--json"))
    table = command("work-queue", "preview", queue)
    soon = json.loads(command("work-queue", "preview", queue, "--hours", "0.5", "--json"))

    assert [(r["name"], r["late"]) for r in rows] == [("late", True), ("later", False)]
    assert [r["id"] for r in rows] == [str(late.id), str(later.id)]
    assert any(line.split()[-1] == "LATE" and "late" in line for line in table.splitlines())
    assert [r["name"] for r in soon] == ["late"]
    with pytest.raises(CommandError, match="work queue 'nowhere' does not exist"):
        command("work-queue", "preview", "nowhere")


def test_schedules_make_upcoming_runs_and_pausing_one_removes_only_its_runs(api):
    name = f"sched-{uuid.uuid4().hex[:6]}"
    found, _ = deployment_create(
        flow_name=name, name="d", entrypoint="f.py:f", code_path="/code", code_version="a" * 64,
        parameters={"msg": "hi"}, parameter_schema=SCHEMA,
        schedules=[{"cron": "0 9 * * *", "timezone": "Europe/Paris"}, {"cron": "30 18 * * *"}],
    )  # fmt: skip
    morning, evening = found.schedules.order_by("pk")

    def upcoming():
        return FlowRun.objects.filter(deployment=found, state_type="SCHEDULED")

    def minutes() -> list[int]:
        return sorted({run.expected_start_time.minute for run in upcoming()})

    assert upcoming().count() == 6 and minutes() == [0, 30]  # three of each, named by slot
    assert all(run.idempotency_key.startswith(f"scheduled:{found.pk}:") for run in upcoming())

    out = command("deployment", "pause-schedule", f"{name}/d", "--schedule", str(evening.pk))
    assert f"Paused schedule {evening.pk}" in out and minutes() == [0] and upcoming().count() == 3
    assert f"Schedule {evening.pk}:" in command("deployment", "inspect", f"{name}/d") and "(paused)" in command("deployment", "inspect", f"{name}/d")
    with pytest.raises(CommandError, match=f"has no schedule 999999; its schedules: {morning.pk}, {evening.pk}"):
        command("deployment", "pause-schedule", f"{name}/d", "--schedule", "999999")

    paused_all = api.post(f"deployments/{found.pk}/pause_schedule/", json={})
    assert paused_all.status_code == 200 and not upcoming().exists()
    assert [s["active"] for s in paused_all.json()["schedules"]] == [False, False]
    resumed = api.post(f"deployments/{found.pk}/resume_schedule/", json={"schedule_id": evening.pk})
    assert resumed.status_code == 200 and minutes() == [30] and upcoming().count() == 3
    from django_celery_beat.models import PeriodicTask

    tasks = PeriodicTask.objects.filter(name__startswith=f"runway schedule {found.pk} ").order_by("name")
    found_tasks = sorted((int(t.name.split()[-1]), t.enabled) for t in tasks)  # by id, not as text ("10" < "9")
    assert found_tasks == [(morning.pk, False), (evening.pk, True)]
