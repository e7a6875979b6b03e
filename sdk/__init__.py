"""Runway's authoring API: the names of Prefect 2's, so `from prefect import ...` becomes `from sdk import ...`.

    from sdk import flow, task, get_run_logger

Nothing here touches the database until a flow or task actually runs.
"""
from sdk.annotations import allow_failure, quote, unmapped
from sdk.context import get_run_context, tags
from sdk.flows import Flow, flow
from sdk.futures import PrefectFuture, RunwayFuture
from sdk.logging import get_run_logger
from sdk.states import State
from sdk.tasks import Task, task

__all__ = [
    "Flow", "PrefectFuture", "RunwayFuture", "State", "Task", "allow_failure", "flow",
    "get_run_context", "get_run_logger", "quote", "tags", "task", "unmapped",
]  # fmt: skip
