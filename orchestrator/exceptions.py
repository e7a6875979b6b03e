"""Errors the orchestrator raises; callers (API, CLI, SDK client) turn them into messages."""


class OrchestratorError(Exception):
    """Base class of every error the orchestrator raises on purpose."""


class ObjectNotFound(OrchestratorError, LookupError):
    """Raised when a flow, run or other object named by id or name does not exist."""


class InvalidInput(OrchestratorError, ValueError):
    """Raised when a caller passes a value the orchestrator cannot accept; the message names it."""
