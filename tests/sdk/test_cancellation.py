"""Cancelling flow runs: from the SDK, the API and the CLI; the process running the run stops it,
its task runs end Cancelled, and nothing is written Completed afterwards."""
from __future__ import annotations

import asyncio
import gc
import io
import subprocess
import sys
import threading
import time
import weakref

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_run_create, flow_get_or_create
from orchestrator.schemas import State as ServerState, StateType
from sdk import flow, task
from sdk.context import FlowRunContext
from sdk.flow_runs import cancel_flow_run
from tests.deployments.conftest import wait_until
from tests.sdk.conftest import REPO, latest_flow_run, state_names


def _cancel_when_running(flow_name: str, *, after: str | None = None, via=cancel_flow_run) -> threading.Thread:
    """Cancel the newest run of `flow_name` once it is Running (and `after`'s event is set)."""
    def cancel() -> None:
        run = wait_until(lambda: FlowRun.objects.filter(flow__name=flow_name, state_type="RUNNING").first(), 30, "the run starting")
        if after is not None:
            wait_until(lambda: run.task_runs.filter(name=after, state_type="RUNNING").exists(), 30, f"{after} running")
        via(run.id)

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_a_running_flow_cancelled_from_the_sdk_stops_and_ends_cancelled_with_its_task_runs(unique_name):
    calls: list[str] = []
    finished_after_cancel: list[str] = []

    @task
    def quick() -> str:
        return "done"

    @task
    def busy() -> None:
        for _ in range(600):  # short steps: a thread is interrupted between two
            time.sleep(0.05)
        finished_after_cancel.append("busy")

    @task
    def never() -> None:
        finished_after_cancel.append("never")

    def on_cancellation(flow_, run, state) -> None:
        calls.append(state.name)

    @flow(name=unique_name, on_cancellation=[on_cancellation])
    def pipeline() -> None:
        quick()
        running = busy.submit()
        never.submit(wait_for=[running])
        time.sleep(60)  # the flow's own code, blocked in the main thread, is interrupted too

    _cancel_when_running(unique_name, after="busy-0")
    started = time.monotonic()
    state = pipeline(return_state=True)

    assert state.is_cancelled() and time.monotonic() - started < 20
    assert calls == ["Cancelled"]
    run = latest_flow_run(unique_name)
    assert state_names(run)[-2:] == ["Cancelling", "Cancelled"]
    tasks = dict(run.task_runs.values_list("name", "state_name"))
    assert tasks == {"quick-0": "Completed", "busy-0": "Cancelled", "never-0": "Cancelled"}
    time.sleep(1)  # an interrupted thread that went on would have finished by now
    assert finished_after_cancel == []
    assert not run.task_runs.filter(name__in=["busy-0", "never-0"], states__type="COMPLETED").exists()


def test_an_async_flow_is_cancelled_too(unique_name):
    @flow(name=unique_name)
    async def waits() -> str:
        await asyncio.sleep(60)
        return "not reached"

    _cancel_when_running(unique_name)
    state = asyncio.run(waits(return_state=True))
    assert state.is_cancelled()
    assert latest_flow_run(unique_name).state_name == "Cancelled"


def test_a_subflow_is_cancelled_with_its_parent(unique_name):
    @flow(name=f"{unique_name}-child")
    def child() -> None:
        time.sleep(60)

    @flow(name=unique_name)
    def parent() -> None:
        child()

    _cancel_when_running(f"{unique_name}-child", via=lambda _: cancel_flow_run(latest_flow_run(unique_name).id))
    assert parent(return_state=True).is_cancelled()
    assert latest_flow_run(f"{unique_name}-child").state_name == "Cancelled"


def test_a_parent_does_not_keep_the_cancel_scopes_of_its_finished_subflows(unique_name):
    """Many subflows in one run: each one's scope goes when it ends (a flow run's memory
    would otherwise grow with every subflow it called)."""
    scopes: list[weakref.ref] = []

    @flow(name=f"{unique_name}-child")
    def child() -> None:
        scopes.append(weakref.ref(FlowRunContext.get().cancel_scope))

    @flow(name=unique_name)
    def parent() -> int:
        for _ in range(20):
            child()
        gc.collect()
        return sum(ref() is not None for ref in scopes)

    assert parent() == 0
    assert len(scopes) == 20


def _scheduled_run(name: str) -> FlowRun:
    flow_id = flow_get_or_create(name=name).id
    run, _ = flow_run_create(flow_id=flow_id, name=f"{name}-run", state=ServerState(type=StateType.SCHEDULED))
    return run


def test_a_scheduled_run_is_cancelled_at_once_and_a_finished_one_cannot_be(unique_name):
    run = _scheduled_run(unique_name)
    assert cancel_flow_run(run.id).is_cancelled()
    run.refresh_from_db()
    assert run.state_name == "Cancelled"
    from orchestrator.exceptions import InvalidInput

    with pytest.raises(InvalidInput, match="already Cancelled"):
        cancel_flow_run(run.id)


def test_the_api_cancels_a_run_and_refuses_a_finished_one(api, unique_name):
    run = _scheduled_run(unique_name)
    answer = api.post(f"flow_runs/{run.id}/cancel/")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"]["type"] == "CANCELLED" and answer.json()["status"] == "ACCEPT"
    again = api.post(f"flow_runs/{run.id}/cancel/")
    assert again.status_code == 400 and "already Cancelled" in again.text
    assert api.post("flow_runs/00000000-0000-0000-0000-000000000000/cancel/").status_code == 404


def test_the_cli_cancels_a_flow_running_in_another_process(unique_name):
    script = f"""
import time
from sdk import flow

@flow(name={unique_name!r})
def slow():
    time.sleep(60)

print(slow(return_state=True), flush=True)
"""
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        run = wait_until(lambda: FlowRun.objects.filter(flow__name=unique_name, state_type="RUNNING").first(), 60, "the run starting")
        out = io.StringIO()
        call_command("flow-run", "cancel", str(run.id), stdout=out)
        assert "is now Cancelling" in out.getvalue()
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert "Cancelled" in output
    run.refresh_from_db()
    assert run.state_name == "Cancelled"
    with pytest.raises(CommandError, match="already Cancelled"):
        call_command("flow-run", "cancel", str(run.id), stdout=io.StringIO())
