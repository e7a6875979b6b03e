"""The vocabulary the SDK and the orchestrator share, in plain Python.

Importable without `django.setup()`: the SDK builds these objects, the rules
engine reads and answers with them, and the HTTP transport (later) sends them
as JSON through `to_dict` / `from_dict`.
"""
from orchestrator.schemas.states import (
    TERMINAL_TYPES,
    OrchestrationResult,
    SetStateStatus,
    State,
    StateDetails,
    StateType,
)

__all__ = [
    "TERMINAL_TYPES",
    "OrchestrationResult",
    "SetStateStatus",
    "State",
    "StateDetails",
    "StateType",
]
