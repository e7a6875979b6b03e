"""Exceptions users see, under Prefect 2's names so `except` clauses carry over."""
from __future__ import annotations


class RunwayException(Exception):
    """Base class of every exception the SDK raises on purpose."""


PrefectException = RunwayException


class MissingContextError(RunwayException, RuntimeError):
    """Raised when run context is needed (get_run_logger, get_run_context) outside any flow or task run."""


class ParameterTypeError(RunwayException, TypeError):
    """Raised when a flow's parameters fail validation against its type hints."""


class ParameterBindError(RunwayException, TypeError):
    """Raised when call arguments do not fit the function's signature."""


class SignatureMismatchError(RunwayException, TypeError):
    """Raised when parameters given by name do not match the function's signature."""


class MappingLengthMismatch(RunwayException, ValueError):
    """Raised when `task.map` gets iterables of different lengths."""


class MappingMissingIterable(RunwayException, ValueError):
    """Raised when `task.map` gets no iterable argument to map over."""


class UpstreamTaskError(RunwayException):
    """Raised when a task cannot run because a task it depends on did not complete."""


class MissingResult(RunwayException):
    """Raised when a state's result was not persisted and is not in memory."""


class CrashedRun(RunwayException):
    """Raised by `State.result()` of a Crashed state."""


class FailedRun(RunwayException):
    """Raised by `State.result()` of a Failed state whose original exception is unavailable."""


class CancelledRun(RunwayException):
    """Raised by `State.result()` of a Cancelled state."""


class FlowRunCancelledError(CancelledRun):
    """Raised into a run's code when its flow run is cancelled: the run ends Cancelled."""


class TaskRunTimeoutError(RunwayException, TimeoutError):
    """Raised when a task run exceeds its timeout_seconds."""


class FlowRunTimeoutError(RunwayException, TimeoutError):
    """Raised when a flow run exceeds its timeout_seconds."""


class Abort(BaseException):
    """Raised inside the engine when the orchestrator says to stop orchestrating a run."""


class Pause(BaseException):
    """Raised by `suspend_flow_run` out of the flow's code: the run is suspended and its process
    stops running it (a control signal, so `except Exception` in user code does not catch it)."""


class FlowPauseTimeout(RunwayException, TimeoutError):
    """Raised by `pause_flow_run` when nobody resumed the run before its timeout: the run fails."""


class TerminationSignal(BaseException):
    """Raised in the main thread on SIGTERM so the run is recorded Crashed before the process exits."""

    def __init__(self, signal: int):
        super().__init__(f"received signal {signal}")
        self.signal = signal


class ObjectNotFound(RunwayException, LookupError):
    """Raised when the orchestrator has no object with the given id or name."""


class OrchestratorUnavailable(RunwayException, ConnectionError):
    """Raised when the API at RUNWAY_API_URL cannot be reached, or keeps failing, for longer than the retry window."""


class ApiRequestRefused(RunwayException, PermissionError):
    """Raised when the API refuses the SDK's credentials (HTTP 401 or 403): set RUNWAY_API_KEY to a valid write token."""


class TransactionCommitError(RunwayException, RuntimeError):
    """Raised when a transaction's on_commit hook or its record fails: the transaction was rolled back instead."""


class TransactionRecordError(RunwayException, ValueError):
    """Raised when a keyed transaction's record in result storage cannot be read."""
