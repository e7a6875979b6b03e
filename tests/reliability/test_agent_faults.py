"""Faults 8, 9 and 10: deployment runs and their agents (real `celery worker -Q <work queue>` processes).

8: no agent online, a scheduled run goes Late, then runs once when an agent comes.
9: a Running deployment run is cancelled: its process stops, no task run starts after, slots are
   freed; and a run whose agent is dead still ends Cancelled.
10: a flow run whose process is killed ends Crashed and takes its unfinished task runs with it.
"""
from __future__ import annotations

import os
import signal
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.deployments import services
from orchestrator.limits.models import ConcurrencySlot
from orchestrator.limits.services import concurrency_limit_create, concurrency_limit_delete
from orchestrator.runs.models import FlowRun, FlowRunState
from orchestrator.runs.services import flow_run_cancel
from tests.deployments.conftest import wait_until
from tests.deployments.test_agents import command, finished, queue_name, running
from tests.reliability import ledger
from tests.reliability.faults import history
from tests.reliability.flows import SLOT_TAG

REPO = Path(__file__).resolve().parents[2]
STEPPING_FLOW = '''
import os
import sys
import time
sys.path.insert(0, {repo!r})
from sdk import flow, task
from tests.reliability.ledger import record

@task(tags=[{tag!r}])
def step(group: str, i: int, seconds: float) -> int:
    record(group)
    time.sleep(seconds)
    return i

@flow
def {name}(group: str, pid_file: str, steps: int = 1000, seconds: float = 0.2, parallel: bool = False) -> int:
    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
    if parallel:  # every step at once, on the flow's thread pool
        return sum(f.result() for f in step.map(group, range(steps), seconds))
    return sum(step(group, i, seconds) for i in range(steps))
'''


@pytest.fixture
def stepping_deployment(tmp_path):
    """deploy(queue, **parameters) -> the deployment's reference, for a flow of task runs that record
    themselves in the ledger; its process writes its pid to tmp_path/pid."""
    name = f"stepping_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "stepping.py"
    path.write_text(textwrap.dedent(STEPPING_FLOW.format(repo=str(REPO), tag=SLOT_TAG, name=name)))

    def deploy(queue: str, group: str) -> str:
        command("work-queue", "create", queue)
        command("deployment", "create", f"{path}:{name}", "--name", "d", "--param", f"group={group}",
                "--param", f"pid_file={tmp_path / 'pid'}", "-q", queue)  # fmt: skip
        return f"{name.replace('_', '-')}/d"

    return deploy


def _flow_pid(tmp_path: Path) -> int:
    pid_file = tmp_path / "pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, "the flow's process starting")
    return int(pid_file.read_text())


def test_a_run_no_agent_takes_is_late_within_20_s_and_runs_once_when_one_comes(stepping_deployment, start_worker,
                                                                                ledger_group):  # fmt: skip
    """Fault 8 (late after 1 s in this test; the default is 15 s)."""
    queue = queue_name()
    ref = stepping_deployment(queue, ledger_group)
    start_worker(None, 1, RUNWAY_LATE_AFTER_SECONDS="1")  # a worker, but no agent of this queue
    run_id = services.deployment_run_create(ref=ref, parameters={"steps": 1, "seconds": 0}).id
    created = time.monotonic()
    wait_until(lambda: FlowRun.objects.get(pk=run_id).state_name == "Late", 20, "the run being marked Late")
    print(f"\n[fault 8] Late {time.monotonic() - created:.1f} s after it was due")

    start_worker(queue, 1)
    run = wait_until(lambda: finished(run_id), 60, "the late run finishing")
    assert history(run) == ["Scheduled", "Late", "Pending", "Running", "Completed"]
    assert sum(ledger.executions_by_run(ledger_group).values()) == 1
    _assert_late_only_ever_follows_scheduled()


def _assert_late_only_ever_follows_scheduled() -> None:
    """Over every deployment run in this database, not only this test's. (Tests of the rules engine
    force Late onto other runs on purpose: a forced state skips the rules.)"""
    for late in FlowRunState.objects.filter(name="Late", flow_run__deployment__isnull=False):
        before = (FlowRunState.objects.filter(flow_run_id=late.flow_run_id, timestamp__lt=late.timestamp)
                  .order_by("-timestamp").first())  # fmt: skip
        assert before is not None and before.type == "SCHEDULED", (late, before)


@pytest.fixture
def slot_limit():
    concurrency_limit_create(tag=SLOT_TAG, limit=1)
    yield
    concurrency_limit_delete(tag=SLOT_TAG)


def test_a_cancelled_run_stops_within_30_s_starts_no_task_run_after_and_frees_its_slots(
        stepping_deployment, start_worker, ledger_group, slot_limit, tmp_path):  # fmt: skip
    """Fault 9: the flow runs one task run after another (each holding the slot tag) until cancelled."""
    queue = queue_name()
    ref = stepping_deployment(queue, ledger_group)
    start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=ref).id
    child = _flow_pid(tmp_path)
    wait_until(lambda: len(ledger.entries(ledger_group)) >= 3, 60, "three task runs")

    asked = time.monotonic()
    flow_run_cancel(flow_run_id=run_id, by="test")
    run = wait_until(lambda: finished(run_id), 30, "the cancelled run ending")
    took = time.monotonic() - asked
    wait_until(lambda: not running(child), 10, "the run's process stopping")
    time.sleep(1)  # a task run that still started would show now
    cancelled_at = run.state.timestamp
    task_runs = run.task_runs.all()
    print(f"\n[fault 9] Cancelled {took:.1f} s after the request; {len(task_runs)} task runs")
    assert run.state_name == "Cancelled" and took < 30
    assert all(t.start_time is None or t.start_time < cancelled_at for t in task_runs)
    assert {t.state_name for t in task_runs} <= {"Completed", "Cancelled"}
    assert len(ledger.entries(ledger_group)) == sum(1 for t in task_runs if t.start_time) and not ledger.doubled(ledger_group)
    assert not ConcurrencySlot.objects.filter(limit__tag=SLOT_TAG).exists()


def test_a_run_whose_agent_is_dead_still_ends_cancelled(stepping_deployment, start_worker, ledger_group, tmp_path):
    """Fault 9, agent lost: nobody can stop the process, the sweep finds the run's agent quiet."""
    queue = queue_name()
    ref = stepping_deployment(queue, ledger_group)
    start_worker(None, 1)  # sweeps, serves no work queue
    agent = start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=ref).id
    _flow_pid(tmp_path)
    agent.kill()  # main and pool processes; the flow's own process dies with its pool process
    asked = time.monotonic()
    flow_run_cancel(flow_run_id=run_id, by="test")
    run = wait_until(lambda: finished(run_id), 120, "the run leaving Cancelling")
    print(f"\n[fault 9, dead agent] {run.state_name} {time.monotonic() - asked:.1f} s after the request")
    assert run.state_name == "Cancelled", history(run)


def test_a_crashed_flow_run_takes_its_unfinished_task_runs_to_crashed_saying_why(
        stepping_deployment, start_worker, ledger_group, tmp_path):  # fmt: skip
    """Fault 10: three task runs sleep on the flow's threads when the flow's process is killed."""
    queue = queue_name()
    ref = stepping_deployment(queue, ledger_group)
    start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=ref, parameters={"steps": 3, "seconds": 60, "parallel": True}).id
    child = _flow_pid(tmp_path)
    wait_until(lambda: len(ledger.entries(ledger_group)) == 3, 60, "three running task runs")
    os.kill(child, signal.SIGKILL)
    run = wait_until(lambda: finished(run_id), 45, "the flow run ending")
    task_runs = list(run.task_runs.all())
    print(f"\n[fault 10] flow run {run.state_name}: {run.state.message!r}; task runs "
          f"{[t.state.message for t in task_runs]}")  # fmt: skip
    assert run.state_name == "Crashed"
    assert [t.state_name for t in task_runs] == ["Crashed"] * 3
    assert all("flow run" in t.state.message and "crashed" in t.state.message.lower() for t in task_runs)
