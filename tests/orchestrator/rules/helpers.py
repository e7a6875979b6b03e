"""Proposing states to a run through the services, and reading what was written."""
from __future__ import annotations

from typing import Any

from orchestrator.runs import services
from orchestrator.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState
from orchestrator.schemas import OrchestrationResult, State, StateDetails, StateType


def propose(
    run: FlowRun | TaskRun, state: State | StateType, *, force: bool = False, **details: Any
) -> OrchestrationResult:
    """Propose `state` (or a default state of that type, with `details`) for a flow or task run."""
    if isinstance(state, StateType):
        state = State(state, details=StateDetails(**details))
    if isinstance(run, FlowRun):
        return services.flow_run_set_state(flow_run_id=run.id, state=state, force=force)
    return services.task_run_set_state(task_run_id=run.id, state=state, force=force)


def rows(run: FlowRun | TaskRun) -> int:
    """How many state rows the run has."""
    if isinstance(run, FlowRun):
        return FlowRunState.objects.filter(flow_run_id=run.id).count()
    return TaskRunState.objects.filter(task_run_id=run.id).count()


def history(run: FlowRun | TaskRun) -> list[str]:
    """The names of the run's states, oldest first."""
    model, field = (FlowRunState, "flow_run_id") if isinstance(run, FlowRun) else (TaskRunState, "task_run_id")
    return list(model.objects.filter(**{field: run.id}).order_by("timestamp").values_list("name", flat=True))


def fresh(run: FlowRun | TaskRun) -> FlowRun | TaskRun:
    """The run as the database has it now."""
    run.refresh_from_db()
    return run
