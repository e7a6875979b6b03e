"""Agents (real `celery worker -Q <work queue>` processes) and beat run deployments' flow runs:
the user story of docs/deployments.md end to end, exactly-once release, queue limits and
pauses, Late runs, and agents that die.

The session's workers send heartbeats every 0.5 s and are presumed dead after 6 s
(tests/conftest.py); agents release due runs every second.
"""
from __future__ import annotations

import io
import os
import signal
import time
import uuid
from pathlib import Path
from collections import Counter

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from orchestrator.deployments import services
from orchestrator.runs.models import FlowRun
from sdk import flow
from sdk.deployments import run_deployment
from tests.deployments.conftest import wait_until

FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def command(noun: str, *args: str) -> str:
    out = io.StringIO()
    call_command(noun, *args, stdout=out)
    return out.getvalue()


def queue_name() -> str:
    return f"etl-{uuid.uuid4().hex[:6]}"


def ledger_lines(ledger) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def runs_of(deployment: str):
    flow_name, _, name = deployment.partition("/")
    return FlowRun.objects.filter(deployment__flow__name=flow_name, deployment__name=name)


def states_of(run: FlowRun) -> list[str]:
    return list(run.states.order_by("timestamp").values_list("name", flat=True))


def finished(run_id) -> FlowRun | None:
    run = FlowRun.objects.get(pk=run_id)
    return run if run.state_type in FINAL else None


def test_the_user_story_from_work_queue_to_watched_run(agent_flow, start_worker, start_beat, monkeypatch):
    entrypoint, flow_name, ledger = agent_flow(version="v1")
    queue = queue_name()
    monkeypatch.setattr(settings, "RUNWAY_SCHEDULE_SECONDS", 1)  # beat asks for upcoming runs every second
    monkeypatch.setattr(settings, "RUNWAY_SCHEDULE_MAX_RUNS", 2)  # ... and makes two at a time
    command("work-queue", "create", "-t", "ETL", queue)
    out = command("deployment", "create", entrypoint, "--name", "nightly", "--tag", "ETL", "--param", "msg=Hello",
                  "--param", f"ledger={ledger}", "--cron", "0 9 * * *", "--timezone", "Europe/Paris", "-q", queue)  # fmt: skip
    nightly = f"{flow_name}/nightly"
    upcoming = list(runs_of(nightly).order_by("expected_start_time"))
    assert "Schedule: At 09:00, Europe/Paris" in out
    assert len(upcoming) == 2 and all(run.state_name == "Scheduled" for run in upcoming)
    assert {run.expected_start_time.astimezone(settings_zone("Europe/Paris")).hour for run in upcoming} == {9}

    start_worker(queue, 2, RUNWAY_SCHEDULE_MAX_RUNS="2")  # the agent
    start_beat()
    agent_flow(version="v2")  # an edit after deploying changes nothing until deployed again
    out = command("deployment", "run", nightly, "--param", "msg=now", "--watch", "--timeout", "90")
    run = runs_of(nightly).exclude(idempotency_key__startswith="scheduled:").get()
    assert "first line: now" in out and "state Completed" in out
    assert states_of(run) == ["Scheduled", "Pending", "Running", "Completed"]
    assert ledger_lines(ledger) == [f"{run.id} now v1"]
    assert run.code_version == services.deployment_get(ref=nightly).code_version and run.worker

    # A schedule beat keeps filling: every 2 s, two runs ahead, each run once by the agent.
    command("deployment", "create", entrypoint, "--name", "often", "--param", f"ledger={ledger}",
            "--interval", "2", "-q", queue)  # fmt: skip
    often = f"{flow_name}/often"
    wait_until(lambda: runs_of(often).filter(state_type="COMPLETED").count() >= 4, 90, "four scheduled runs completing")
    keys = list(runs_of(often).values_list("idempotency_key", flat=True))
    assert len(keys) == len(set(keys)) and all(key.startswith("scheduled:") for key in keys)
    ran = Counter(line.split()[0] for line in ledger_lines(ledger))
    assert set(ran.values()) == {1}  # no run twice
    assert all(line.endswith(" v2") for line in ledger_lines(ledger)[1:])  # "often" was deployed after the edit

    # Pausing the deployment removes its upcoming runs and makes no new ones.
    command("deployment", "pause", often)
    assert not runs_of(often).filter(state_type="SCHEDULED", next_scheduled_start_time__gt=timezone.now()).exists()
    wait_until(lambda: not runs_of(often).filter(state_type__in=("PENDING", "RUNNING")).exists(), 30, "runs in flight ending")
    count = runs_of(often).count()
    time.sleep(3)  # three beat ticks
    assert runs_of(often).count() == count


def settings_zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def test_a_failed_watched_run_exits_non_zero_and_run_deployment_links_a_subflow(agent_flow, start_worker):
    entrypoint, flow_name, ledger = agent_flow()
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "dev", "--param", f"ledger={ledger}", "-q", queue)
    start_worker(queue, 2)
    with pytest.raises(CommandError, match="ended Failed"):
        command("deployment", "run", f"{flow_name}/dev", "--param", "sleep=not-a-number", "--watch", "--timeout", "60")

    caller_name = f"caller-{uuid.uuid4().hex[:6]}"

    @flow(name=caller_name)
    def caller() -> str:
        child = run_deployment(f"{flow_name}/dev", parameters={"msg": "from-parent"}, timeout=60)
        return child.state.result()

    result = caller()
    parent = FlowRun.objects.get(flow__name=caller_name)
    child = FlowRun.objects.get(parent_flow_run=parent)
    assert result == f"{child.id} from-parent v1"
    assert child.deployment.name == "dev" and child.state_name == "Completed"


def test_two_agents_on_one_queue_run_each_run_once(agent_flow, start_worker):
    entrypoint, flow_name, ledger = agent_flow()
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "fan", "--param", f"ledger={ledger}", "-q", queue)
    start_worker(queue, 2)
    start_worker(queue, 2)
    ids = [services.deployment_run_create(ref=f"{flow_name}/fan", parameters={"msg": str(i)}).id for i in range(24)]

    wait_until(lambda: all(finished(run_id) for run_id in ids), 180, "24 runs finishing")
    ran = Counter(line.split()[0] for line in ledger_lines(ledger))
    assert sorted(ran) == sorted(str(run_id) for run_id in ids) and set(ran.values()) == {1}
    runs = FlowRun.objects.filter(pk__in=ids)
    assert {run.state_name for run in runs} == {"Completed"}
    assert len({run.worker.split("@")[0] for run in runs}) == 2  # both agents took runs


def test_a_queue_s_concurrency_limit_holds_across_agents_and_a_paused_queue_releases_nothing(agent_flow, start_worker):
    entrypoint, flow_name, ledger = agent_flow()
    queue = queue_name()
    command("work-queue", "create", queue, "--limit", "1")
    command("deployment", "create", entrypoint, "--name", "slow", "--param", f"ledger={ledger}", "-q", queue)
    command("work-queue", "pause", queue)
    start_worker(queue, 2)
    start_worker(queue, 2)
    ids = [services.deployment_run_create(ref=f"{flow_name}/slow", parameters={"sleep": 1}).id for _ in range(4)]
    time.sleep(4)  # four release ticks of each agent
    assert set(FlowRun.objects.filter(pk__in=ids).values_list("state_name", flat=True)) == {"Scheduled"}

    command("work-queue", "resume", queue)
    wait_until(lambda: all(finished(run_id) for run_id in ids), 120, "4 runs finishing")
    spans = sorted(FlowRun.objects.filter(pk__in=ids).values_list("start_time", "end_time"))
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))  # never two at once
    assert len(ledger_lines(ledger)) == 4


def test_a_run_no_agent_takes_goes_late_then_runs_once_when_one_comes(agent_flow, start_worker):
    entrypoint, flow_name, ledger = agent_flow()
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "lonely", "--param", f"ledger={ledger}", "-q", queue)
    start_worker(None, 1, RUNWAY_LATE_AFTER_SECONDS="1")  # a worker of another queue: it marks Late runs
    run_id = services.deployment_run_create(ref=f"{flow_name}/lonely").id
    wait_until(lambda: FlowRun.objects.get(pk=run_id).state_name == "Late", 30, "the run being marked Late")
    assert "late" in command("work-queue", "preview", queue).lower()

    start_worker(queue, 1)
    run = wait_until(lambda: finished(run_id), 60, "the late run finishing")
    assert states_of(run) == ["Scheduled", "Late", "Pending", "Running", "Completed"]
    assert len(ledger_lines(ledger)) == 1


def running(pid: int) -> bool:
    """True while the process runs (a zombie, dead but not reaped yet, is not running)."""
    try:
        return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("retries", [1, 0])
def test_a_run_whose_agent_is_killed_is_crashed_and_retried_if_its_deployment_allows(agent_flow, start_worker, retries):
    """With retries, only the pool process running the run is killed (its child must die with it);
    without, the whole agent."""
    entrypoint, flow_name, ledger = agent_flow(retries=retries)
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "fragile", "--param", f"ledger={ledger}", "-q", queue)
    doomed = start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=f"{flow_name}/fragile", parameters={"sleep": 4}).id
    started = ledger.with_name(ledger.name + ".started")
    wait_until(lambda: started.exists(), 60, "the run starting")
    child = int(started.read_text().split()[1])  # the pid of the process running the flow
    if retries:
        os.kill(FlowRun.objects.get(pk=run_id).pid, signal.SIGKILL)  # the pool process, not the worker
    else:
        doomed.kill()
        start_worker(queue, 1)
    wait_until(lambda: not running(child), 10, "the run's process dying with its agent")

    run = wait_until(lambda: finished(run_id), 90, "the run ending")
    history = states_of(run)
    assert "Crashed" in history
    if retries:
        assert run.state_name == "Completed" and history[-4:] == ["AwaitingRetry", "Pending", "Retrying", "Completed"]
        assert len(ledger_lines(ledger)) == 1 and len(started.read_text().splitlines()) == 2
    else:
        assert run.state_name == "Crashed" and ledger_lines(ledger) == []
        assert "stopped sending heartbeats" in run.state.message
        assert len(started.read_text().splitlines()) == 1


def test_two_beats_and_a_restarted_beat_make_one_run_per_slot(agent_flow, start_worker, start_beat, monkeypatch):
    entrypoint, flow_name, ledger = agent_flow()
    queue = queue_name()  # no agent serves it: the runs pile up, Scheduled
    monkeypatch.setattr(settings, "RUNWAY_SCHEDULE_SECONDS", 1)
    monkeypatch.setattr(settings, "RUNWAY_SCHEDULE_MAX_RUNS", 30)  # slack for a slow machine: no slot passes unmade
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "tick", "--param", f"ledger={ledger}",
            "--interval", "1", "-q", queue)  # fmt: skip
    start_worker(None, 2, RUNWAY_SCHEDULE_MAX_RUNS="30")  # runs beat's jobs, two at once
    first, second = start_beat(), start_beat()  # by mistake, twice
    time.sleep(4)
    first.stop()
    time.sleep(2)
    start_beat()  # restarted
    time.sleep(4)
    second.stop()

    slots = sorted(runs_of(f"{flow_name}/tick").values_list("expected_start_time", flat=True))
    assert "Sending due task" in second.output()
    assert len(slots) > 30  # beat kept making upcoming runs (30 were made at deployment)
    assert len(slots) == len(set(slots))  # one run per slot
    assert all((b - a).total_seconds() == 1 for a, b in zip(slots, slots[1:]))  # and no slot skipped


def test_an_agent_serving_two_queues_runs_the_higher_priority_queue_s_runs_first(agent_flow, start_worker):
    entrypoint, flow_name, ledger = agent_flow()
    high, low = queue_name(), queue_name()
    command("work-queue", "create", high, "--priority", "1")
    command("work-queue", "create", low, "--priority", "2")
    for name, queue in (("low", low), ("high", high)):
        command("deployment", "create", entrypoint, "--name", name, "--param", f"ledger={ledger}", "-q", queue)
    lows = [services.deployment_run_create(ref=f"{flow_name}/low", parameters={"msg": "low"}).id for _ in range(3)]
    highs = [services.deployment_run_create(ref=f"{flow_name}/high", parameters={"msg": "high"}).id for _ in range(3)]
    start_worker(f"{low},{high}", 1)  # one process: it takes one run at a time

    wait_until(lambda: all(finished(run_id) for run_id in lows + highs), 90, "six runs finishing")
    order = [line.split()[1] for line in ledger_lines(ledger)]
    assert order == ["high"] * 3 + ["low"] * 3


def test_a_run_whose_stored_code_cannot_be_loaded_ends_crashed_saying_why(agent_flow, start_worker):
    entrypoint, flow_name, ledger = agent_flow()
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "broken", "--param", f"ledger={ledger}", "-q", queue)
    stored = Path(services.deployment_get(ref=f"{flow_name}/broken").code_path, "etl.py")
    stored.chmod(0o644)
    stored.write_text("raise RuntimeError('the stored copy is broken')\n" + stored.read_text())  # as if damaged
    start_worker(queue, 1)

    run_id = services.deployment_run_create(ref=f"{flow_name}/broken").id
    run = wait_until(lambda: finished(run_id), 60, "the run ending")
    time.sleep(2)  # two looks of the agent: the run is not released again
    assert states_of(run) == ["Scheduled", "Pending", "Crashed"]
    assert "could not be loaded" in run.state.message and "the stored copy is broken" in run.state.message
