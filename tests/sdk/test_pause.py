"""Pausing and resuming flow runs: the flow's process waits, someone resumes it (SDK, API, CLI)
with input checked against a declared type, a pause nobody resumes times out, and a paused run
can be cancelled."""
from __future__ import annotations

import io
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pydantic import BaseModel

from orchestrator.exceptions import InvalidInput
from orchestrator.runs.models import FlowRun
from orchestrator.runs.pauses import flow_runs_fail_expired_pauses
from sdk import flow, task
from sdk.flow_runs import cancel_flow_run, pause_flow_run, resume_flow_run, suspend_flow_run
from tests.deployments.conftest import wait_until
from tests.sdk.conftest import latest_flow_run, state_names


class Approval(BaseModel):
    approved: bool
    reviewer: str


def _when_paused(flow_name: str, action) -> threading.Thread:
    def act() -> None:
        run = wait_until(lambda: FlowRun.objects.filter(flow__name=flow_name, state_type="PAUSED").first(), 30, "the pause")
        action(run)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_a_paused_flow_waits_until_resumed_and_its_tasks_run_after(unique_name):
    @task
    def after() -> str:
        return "after"

    @flow(name=unique_name)
    def gated() -> str:
        pause_flow_run(timeout=30, poll_interval=0.1)
        return after()

    _when_paused(unique_name, lambda run: resume_flow_run(run.id))
    assert gated() == "after"
    run = latest_flow_run(unique_name)
    assert state_names(run) == ["Pending", "Running", "Paused", "Running", "Completed"]
    assert run.states.get(name="Paused").details["pause_key"] == "pause-0"


def test_input_is_checked_against_the_declared_type_and_returned_validated(unique_name):
    refused: list[str] = []

    @flow(name=unique_name)
    def review() -> str:
        answer = pause_flow_run(wait_for_input=Approval, timeout=30, poll_interval=0.1)
        return f"{answer.reviewer}: {answer.approved}"

    def resume(run: FlowRun) -> None:
        for bad in (None, {"approved": "maybe", "reviewer": "ann"}, {"approved": True}):
            with pytest.raises(InvalidInput) as error:
                resume_flow_run(run.id, bad)
            refused.append(str(error.value))
        resume_flow_run(run.id, Approval(approved=True, reviewer="ann"))

    _when_paused(unique_name, resume)
    assert review() == "ann: True"
    assert "waits for input" in refused[0] and "approved (boolean, required)" in refused[0]
    assert "approved" in refused[1] and "'reviewer' is a required property" in refused[2]


def test_a_pause_nobody_resumes_fails_the_run_at_its_timeout(unique_name):
    @flow(name=unique_name)
    def forgotten() -> None:
        pause_flow_run(timeout=0.5, poll_interval=0.1)

    state = forgotten(return_state=True)
    assert state.is_failed() and "not resumed within 0.5 seconds" in state.message


def test_a_paused_run_can_be_cancelled(unique_name):
    @flow(name=unique_name)
    def waiting() -> None:
        pause_flow_run(timeout=60, poll_interval=0.1)

    _when_paused(unique_name, lambda run: cancel_flow_run(run.id))
    assert waiting(return_state=True).is_cancelled()
    assert latest_flow_run(unique_name).state_name == "Cancelled"


def test_the_api_and_the_cli_resume_a_paused_run_and_refuse_bad_input(unique_name, api):
    results: dict[str, object] = {}

    @flow(name=unique_name)
    def twice() -> list[int]:
        return [pause_flow_run(wait_for_input=int, timeout=30, poll_interval=0.1) for _ in range(2)]

    def resume(run: FlowRun) -> None:
        bad = api.post(f"flow_runs/{run.id}/resume/", json={"run_input": "seven"})
        results["api_bad"] = (bad.status_code, bad.text)
        results["api"] = api.post(f"flow_runs/{run.id}/resume/", json={"run_input": 7}).status_code
        wait_until(lambda: FlowRun.objects.get(pk=run.id).states.filter(name="Paused").count() == 2, 30, "second pause")
        with pytest.raises(CommandError, match="not valid JSON"):
            call_command("flow-run", "resume", str(run.id), "--input", "{nope", stdout=io.StringIO())
        out = io.StringIO()
        call_command("flow-run", "resume", str(run.id), "--input", "8", stdout=out)
        results["cli"] = out.getvalue()

    _when_paused(unique_name, resume)
    assert twice() == [7, 8]
    assert results["api_bad"][0] == 400 and "is not of type 'integer'" in results["api_bad"][1]
    assert results["api"] == 200 and "is now Running" in results["cli"]
    run = latest_flow_run(unique_name)
    assert run.run_input["pause-0"]["value"] == 7 and run.run_input["pause-1"]["value"] == 8
    with pytest.raises(CommandError, match="not Paused"):
        call_command("flow-run", "resume", str(run.id), stdout=io.StringIO())


def test_suspending_a_run_that_is_not_a_deployment_s_is_refused(unique_name):
    @flow(name=unique_name)
    def direct() -> None:
        suspend_flow_run(timeout=30)

    state = direct(return_state=True)
    assert state.is_failed() and "needs a deployment's run" in state.message


def test_the_sweep_fails_a_paused_run_whose_timeout_passed(unique_name):
    @flow(name=unique_name)
    def abandoned() -> None:
        pause_flow_run(timeout=60, poll_interval=0.1)

    def expire(run: FlowRun) -> None:  # as if its process were gone and its timeout passed
        state = run.state
        state.details = {**state.details, "pause_timeout": "2000-01-01T00:00:00+00:00"}
        state.save(update_fields=["details"])
        assert flow_runs_fail_expired_pauses(grace_seconds=0) == 1

    _when_paused(unique_name, expire)
    state = abandoned(return_state=True)
    run = latest_flow_run(unique_name)
    assert run.state_name == "Failed" and "not resumed before its pause timed out" in run.state.message
    assert not state.is_completed()
