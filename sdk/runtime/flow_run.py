"""The current flow run: id, name, flow_name, parameters, tags, run_count (None outside a flow run)."""
from __future__ import annotations

from typing import Any

ATTRIBUTES = ["id", "name", "flow_name", "parameters", "tags", "run_count"]


def __getattr__(attribute: str) -> Any:
    from sdk.context import FlowRunContext

    if attribute not in ATTRIBUTES:
        raise AttributeError(f"sdk.runtime.flow_run has no attribute {attribute!r}")
    ctx = FlowRunContext.get()
    if ctx is None:
        return {"parameters": {}, "tags": [], "run_count": 0}.get(attribute)
    if attribute == "flow_name":
        return ctx.flow.name
    return getattr(ctx.flow_run, attribute)
