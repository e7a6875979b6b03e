"""Check 13: creating a run with one idempotency key, 50 times at once, makes one run.

50 threads send the same create to the live server at the same moment (a client
retrying a request whose answer it lost, or many clients racing): every answer is
a 201 naming the same run, the database holds one row for the key, and the server
logs no error. Flow runs (`POST /api/flow_runs/`, the flow named, so that the flow
itself is also made once), runs of a deployment (`POST /api/deployments/{id}/runs/`),
and the service called from 50 threads in process.
"""
from __future__ import annotations

import uuid
from collections import Counter

from orchestrator.deployments.services import deployment_create
from orchestrator.runs import services
from orchestrator.runs.models import Flow, FlowRun, FlowRunState
from orchestrator.schemas import State, StateType
from tests.reliability.at_once import ServerLog, at_once, http_at_once

THREADS = 50


def _one_run(key: str) -> FlowRun:
    runs = list(FlowRun.objects.filter(idempotency_key=key))
    assert len(runs) == 1, f"{len(runs)} runs for idempotency key {key}"
    assert FlowRunState.objects.filter(flow_run_id=runs[0].id).count() == 1  # created once, in one state
    return runs[0]


def test_50_creates_of_one_flow_run_at_once_over_http_make_one_run(live_server, make_token):
    key, flow_name = f"idem-{uuid.uuid4().hex}", f"idem-{uuid.uuid4().hex[:8]}"
    body = {"flow_name": flow_name, "idempotency_key": key, "parameters": {"x": 1}, "state": {"type": "SCHEDULED"}}
    log = ServerLog(live_server)

    replies = http_at_once(live_server, make_token(), [("/api/flow_runs/", body)] * THREADS)

    assert Counter(code for code, _ in replies) == {201: THREADS}, [r for r in replies if r[0] != 201][:3]
    run = _one_run(key)
    assert {reply["flow_run"]["id"] for _, reply in replies} == {str(run.id)}
    assert {reply["orchestration"]["state"]["id"] for _, reply in replies} == {str(run.state_id)}
    assert Flow.objects.filter(name=flow_name).count() == 1
    log.assert_clean()


def test_50_runs_of_a_deployment_with_one_key_at_once_over_http_make_one_run(live_server, make_token):
    deployment, _ = deployment_create(flow_name=f"idem-{uuid.uuid4().hex[:8]}", name="d", entrypoint="f.py:f",
                                      code_path="/nowhere", code_version="0" * 64)  # fmt: skip
    key = f"idem-{uuid.uuid4().hex}"
    log = ServerLog(live_server)

    replies = http_at_once(live_server, make_token(), [(f"/api/deployments/{deployment.id}/runs/", {"idempotency_key": key})] * THREADS)

    assert Counter(code for code, _ in replies) == {201: THREADS}, [r for r in replies if r[0] != 201][:3]
    run = _one_run(key)
    assert run.deployment_id == deployment.id
    assert {reply["id"] for _, reply in replies} == {str(run.id)}
    log.assert_clean()


def test_50_creates_of_one_flow_run_at_once_in_process_make_one_run():
    flow = services.flow_get_or_create(name=f"idem-{uuid.uuid4().hex[:8]}")
    key = f"idem-{uuid.uuid4().hex}"

    def create() -> tuple[uuid.UUID, uuid.UUID]:
        run, answer = services.flow_run_create(flow_id=flow.id, name="idem", state=State(StateType.PENDING),
                                               idempotency_key=key)  # fmt: skip
        return run.id, answer.state.id

    results = at_once([create] * THREADS)

    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    run = _one_run(key)
    assert set(results) == {(run.id, run.state_id)}
