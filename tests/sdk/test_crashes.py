"""A run whose process is interrupted or killed never stays Running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.sdk.conftest import REPO, latest_flow_run, run_script

SLOW_FLOW = """
import sys, time
from sdk import flow, task

@task
def sleeper():
    print("STARTED", flush=True)
    time.sleep(60)

@flow(name=sys.argv[1])
def stuck():
    sleeper()

stuck()
"""


def _start(name: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_FLOW, name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, cwd=REPO, env=dict(os.environ),
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "STARTED"
    return proc


def test_ctrl_c_marks_the_flow_and_task_runs_crashed(unique_name):
    proc = _start(unique_name)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    run = latest_flow_run(unique_name)
    assert (run.state_type, run.state.message) == ("CRASHED", "Execution was aborted by an interrupt signal.")
    assert run.task_runs.get().state_type == "CRASHED"


def test_sigterm_marks_the_run_crashed(unique_name):
    proc = _start(unique_name)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    run = latest_flow_run(unique_name)
    assert run.state_type == "CRASHED"
    assert "termination signal" in run.state.message


def test_a_killed_process_runs_are_marked_crashed_when_runway_next_starts(unique_name):
    proc = _start(unique_name)
    proc.kill()
    proc.wait(timeout=30)
    assert latest_flow_run(unique_name).state_type == "RUNNING"
    started = run_script("from sdk.client import get_client; get_client()")
    assert started.returncode == 0, started.stderr
    run = latest_flow_run(unique_name)
    assert run.state_type == "CRASHED"
    assert f"pid {proc.pid}" in run.state.message
    assert run.task_runs.get().state_type == "CRASHED"


def test_a_crashed_run_is_never_reported_completed_later(unique_name):
    proc = _start(unique_name)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    time.sleep(0.1)
    states = list(latest_flow_run(unique_name).states.values_list("type", flat=True).order_by("timestamp"))
    assert states == ["PENDING", "RUNNING", "CRASHED"]


def test_on_crashed_hooks_run_when_the_flow_is_interrupted(tmp_path, unique_name):
    marker = tmp_path / "hook-ran"
    code = f"""
import os, signal
from sdk import flow

def note(flow_, run, state):
    open({str(marker)!r}, "w").write(state.type.value)

@flow(name={unique_name!r}, on_crashed=[note])
def interrupted():
    os.kill(os.getpid(), signal.SIGINT)

interrupted()
"""
    result = run_script(code)
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr
    assert marker.read_text() == "CRASHED"


def test_the_sweep_records_one_crashed_state_per_run(unique_name):
    proc = _start(unique_name)
    proc.kill()
    proc.wait(timeout=30)
    assert run_script("from sdk.client import get_client; get_client()").returncode == 0
    task_run = latest_flow_run(unique_name).task_runs.get()
    assert list(task_run.states.values_list("type", flat=True).order_by("timestamp")) == ["PENDING", "RUNNING", "CRASHED"]
