"""Fixtures that run a rules test once for a flow run and once for a task run."""
from __future__ import annotations

import uuid

import pytest

from orchestrator.runs import services
from orchestrator.schemas import OrchestrationResult, State, StateType


@pytest.fixture(params=["flow", "task"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_run(kind, make_flow_run, make_task_run):
    """make_run(*types, **policy): a flow run, or a task run in a Running flow run."""
    return make_flow_run if kind == "flow" else make_task_run


@pytest.fixture
def new_run(kind, flow, make_flow_run):
    """new_run(state, **policy) -> (run, answer): a run created in `state` by the create service."""

    def create(state: State, **policy) -> tuple[object, OrchestrationResult]:
        if kind == "flow":
            name = f"run-{uuid.uuid4().hex[:6]}"
            return services.flow_run_create(flow_id=flow.id, name=name, state=state, empirical_policy=policy)
        flow_run = make_flow_run(StateType.PENDING, StateType.RUNNING)
        return services.task_run_create(
            flow_run_id=flow_run.id, task_key="tests.task", dynamic_key=uuid.uuid4().hex[:6],
            name="task-0", state=state, empirical_policy=policy,
        )  # fmt: skip

    return create
