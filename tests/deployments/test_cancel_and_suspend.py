"""Cancelling and suspending deployment runs while agents (real `celery worker` processes) run
them: a cancelled run's process is stopped, the run ends Cancelled and its agent's slot is free
again, and a process that ignores the cancellation is killed by its agent; a suspended run frees
its agent and, resumed with input, runs again reusing the task results it had."""
from __future__ import annotations

import textwrap
import time
import uuid

from orchestrator.deployments import services
from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_run_cancel
from tests.deployments.conftest import wait_until
from tests.deployments.test_agents import command, finished, ledger_lines, queue_name, running, states_of

STUBBORN_FLOW = '''
import os
import time
from sdk import flow

@flow
def {name}(ledger: str) -> None:
    with open(ledger + ".started", "a") as out:
        out.write(f"{{os.getpid()}}\\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # swallows every interruption: only a kill stops it
        try:
            time.sleep(0.1)
        except BaseException:
            pass
    with open(ledger, "a") as out:
        out.write("finished\\n")
'''


SUSPENDING_FLOW = '''
from sdk import flow, task
from sdk.flow_runs import suspend_flow_run

@task
def record(ledger: str, line: str) -> str:
    with open(ledger, "a") as out:
        out.write(line + "\\n")
    return line

@flow
def {name}(ledger: str) -> str:
    record(ledger, "extracted")
    approver = suspend_flow_run(wait_for_input=str, timeout=600)
    return record(ledger, f"loaded, approved by {{approver}}")
'''


def _started_pid(ledger) -> int:
    started = ledger.with_name(ledger.name + ".started")
    wait_until(lambda: started.exists() and started.read_text().strip(), 60, "the run starting")
    return int(started.read_text().split()[-1])


def test_cancelling_a_running_deployment_run_stops_its_process_and_frees_the_agent(agent_flow, start_worker):
    entrypoint, flow_name, ledger = agent_flow()
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "long", "--param", f"ledger={ledger}", "-q", queue)
    start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=f"{flow_name}/long", parameters={"sleep": 60}).id
    child = _started_pid(ledger)

    asked = time.monotonic()
    assert flow_run_cancel(flow_run_id=run_id, by="test").state.name == "Cancelling"
    run = wait_until(lambda: finished(run_id), 30, "the run ending")
    assert run.state_name == "Cancelled" and time.monotonic() - asked < 15
    assert states_of(run)[-2:] == ["Cancelling", "Cancelled"]
    wait_until(lambda: not running(child), 10, "the run's process stopping")
    assert ledger_lines(ledger) == []  # the flow never reached its task

    # The agent's only process is free: the next run runs.
    after = services.deployment_run_create(ref=f"{flow_name}/long", parameters={"msg": "next"}).id
    next_run = wait_until(lambda: finished(after), 60, "the next run")
    assert next_run.state_name == "Completed", next_run.state.message


def test_a_run_that_ignores_its_cancellation_is_killed_by_its_agent(tmp_path, start_worker):
    name = f"stubborn_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "stubborn.py"
    path.write_text(textwrap.dedent(STUBBORN_FLOW.format(name=name)))
    ledger = tmp_path / "ledger.txt"
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", f"{path}:{name}", "--name", "d", "--param", f"ledger={ledger}", "-q", queue)
    start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=f"{name.replace('_', '-')}/d").id
    child = _started_pid(ledger)

    flow_run_cancel(flow_run_id=run_id, by="test")
    run = wait_until(lambda: finished(run_id), 30, "the run ending")  # grace 3 s (tests/conftest.py)
    assert run.state_name == "Cancelled" and "process was stopped" in run.state.message, run.state.message
    assert "heartbeats" not in run.state.message  # its agent stopped it, not the sweep
    wait_until(lambda: not running(child), 10, "the run's process stopping")
    assert ledger_lines(ledger) == []
    assert FlowRun.objects.get(pk=run_id).states.filter(type="COMPLETED").count() == 0


def test_a_suspended_run_frees_its_agent_and_resumed_runs_again_reusing_its_task_results(tmp_path, start_worker):
    name = f"suspending_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "suspending.py"
    path.write_text(textwrap.dedent(SUSPENDING_FLOW.format(name=name)))
    ledger = tmp_path / "ledger.txt"
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", f"{path}:{name}", "--name", "d", "--param", f"ledger={ledger}", "-q", queue)
    start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=f"{name.replace('_', '-')}/d").id

    run = wait_until(lambda: FlowRun.objects.filter(pk=run_id, state_type="PAUSED").first(), 60, "the run suspending")
    assert run.state_name == "Suspended" and ledger_lines(ledger) == ["extracted"]
    wait_until(lambda: not FlowRun.objects.get(pk=run_id).worker, 30, "the agent letting the run go")
    assert "waits for input" in command_error("flow-run", "resume", str(run_id))

    out = command("flow-run", "resume", str(run_id), "--input", '"ann"')
    assert "is now Resuming" in out
    run = wait_until(lambda: finished(run_id), 60, "the resumed run ending")
    assert run.state_name == "Completed", run.state.message
    assert ledger_lines(ledger) == ["extracted", "loaded, approved by ann"]  # "extracted" was not run again
    history = states_of(run)
    assert history[history.index("Suspended"):] == ["Suspended", "Resuming", "Resuming", "Running", "Completed"]


def command_error(noun: str, *args: str) -> str:
    from django.core.management.base import CommandError

    try:
        command(noun, *args)
    except CommandError as error:
        return str(error)
    raise AssertionError(f"{noun} {' '.join(args)} did not fail")


def test_a_suspended_run_is_cancelled_at_once(tmp_path, start_worker):
    name = f"suspending_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "suspending.py"
    path.write_text(textwrap.dedent(SUSPENDING_FLOW.format(name=name)))
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", f"{path}:{name}", "--name", "d", "--param", f"ledger={tmp_path / 'l.txt'}", "-q", queue)
    start_worker(queue, 1)
    run_id = services.deployment_run_create(ref=f"{name.replace('_', '-')}/d").id
    wait_until(lambda: FlowRun.objects.filter(pk=run_id, state_type="PAUSED", worker="").exists(), 60, "the run suspending")
    assert flow_run_cancel(flow_run_id=run_id, by="test").state.name == "Cancelled"
    run = FlowRun.objects.get(pk=run_id)
    assert run.state_name == "Cancelled" and set(run.task_runs.values_list("state_name", flat=True)) == {"Completed"}
