"""The current task run: id, name, task_name, parameters, tags, run_count (None outside a task run)."""
from __future__ import annotations

from typing import Any

ATTRIBUTES = ["id", "name", "task_name", "parameters", "tags", "run_count"]


def __getattr__(attribute: str) -> Any:
    from sdk.context import TaskRunContext

    if attribute not in ATTRIBUTES:
        raise AttributeError(f"sdk.runtime.task_run has no attribute {attribute!r}")
    ctx = TaskRunContext.get()
    if ctx is None:
        return {"parameters": {}, "tags": [], "run_count": 0}.get(attribute)
    if attribute == "task_name":
        return ctx.task.name
    return getattr(ctx.task_run, attribute)
