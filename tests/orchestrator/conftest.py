"""Helpers for orchestrator tests: runs created and driven through the real services."""
from __future__ import annotations

import uuid

import pytest

from orchestrator.runs import services
from orchestrator.runs.models import FlowRun
from orchestrator.schemas import State, StateType


@pytest.fixture
def flow():
    return services.flow_get_or_create(name=f"test-flow-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_flow_run(flow):
    """make_flow_run(*types, pid=None, retries=0, ...): a flow run driven (with force) through the given state types.

    Keyword arguments other than `pid` become the run's empirical policy.
    """

    def make(*types: StateType, pid: int | None = None, **policy):
        run, _ = services.flow_run_create(
            flow_id=flow.id, name=f"run-{uuid.uuid4().hex[:6]}", state=State(types[0]),
            empirical_policy=policy, pid=pid,
        )  # fmt: skip
        for state_type in types[1:]:
            services.flow_run_set_state(flow_run_id=run.id, state=State(state_type), force=True)
        run.refresh_from_db()
        return run

    return make


@pytest.fixture
def make_task_run(make_flow_run):
    """make_task_run(*types, flow_state=RUNNING, flow_run=None, **policy): a task run in a flow run in `flow_state`.

    Pass `flow_run` to add the task run to an existing flow run instead.
    """

    def make(
        *types: StateType, flow_state: StateType = StateType.RUNNING, flow_run: FlowRun | None = None, **policy
    ):
        if flow_run is None:
            path = (StateType.PENDING,) if flow_state == StateType.PENDING else (StateType.PENDING, flow_state)
            flow_run = make_flow_run(*path)
        run, _ = services.task_run_create(
            flow_run_id=flow_run.id, task_key="tests.task", dynamic_key=uuid.uuid4().hex[:6],
            name="task-0", state=State(types[0]), empirical_policy=policy,
        )  # fmt: skip
        for state_type in types[1:]:
            services.task_run_set_state(task_run_id=run.id, state=State(state_type), force=True)
        run.refresh_from_db()
        return run

    return make
