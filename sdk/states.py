"""States as users see them: Prefect 2's constructors, predicates and `State.result()`.

The SDK's State is the shared schema plus the value it holds in memory, so a
result produced in this process is returned without a round trip to storage.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from orchestrator.schemas import TERMINAL_TYPES, StateDetails, StateType
from orchestrator.schemas import State as _SchemaState
from sdk import results
from sdk.redaction import redact, redact_data

__all__ = [
    "State", "StateType", "StateDetails", "Scheduled", "Late", "AwaitingRetry", "Pending",
    "Running", "Retrying", "Completed", "Failed", "Crashed", "Cancelled", "Cancelling",
    "Paused", "Suspended",
]  # fmt: skip

_NO_DATA = object()


@dataclass
class State:
    """A run's state; `result()` gives its return value or raises its exception.

    `result_ref` is where the orchestrator recorded the result; `data` is the
    value itself when this process produced or already loaded it.
    """

    type: StateType
    name: str | None = None
    message: str | None = None
    timestamp: datetime | None = None
    details: StateDetails = field(default_factory=StateDetails)
    result_ref: dict[str, Any] | None = None
    id: Any = None
    data: Any = field(default=_NO_DATA, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.type = StateType(self.type)
        if self.name is None:
            self.name = self.type.value.title()

    @classmethod
    def from_schema(cls, schema: _SchemaState, data: Any = _NO_DATA) -> State:
        return cls(
            type=schema.type, name=schema.name, message=schema.message, timestamp=schema.timestamp,
            details=schema.details, result_ref=schema.result, id=schema.id, data=data,
        )  # fmt: skip

    def to_schema(self) -> _SchemaState:
        """The state as sent to the orchestrator: secret values in its message and result reference
        (an exception's text and traceback) are redacted (sdk/redaction.py)."""
        return _SchemaState(
            type=self.type, name=self.name, message=redact(self.message), timestamp=self.timestamp,
            details=self.details.copy(), result=redact_data(self.result_ref), id=self.id,
        )  # fmt: skip

    def result(self, raise_on_failure: bool = True, fetch: bool | None = None) -> Any:
        """The run's return value; for Failed, Crashed or Cancelled, raise (or return) its exception.
        With `fetch=True` in async code, an awaitable of it, as Prefect 2's `await state.result(fetch=True)`."""
        from sdk.futures import in_async_context

        if fetch is True and in_async_context():
            return asyncio.to_thread(self.result, raise_on_failure)
        if self.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            exc = self._exception()
            if raise_on_failure:
                raise exc
            return exc
        if self.data is _NO_DATA:
            self.data = results.load_value(self.result_ref)
        return self.data

    def _exception(self) -> BaseException:
        if isinstance(self.data, BaseException):
            return self.data
        return results.load_exception(self.result_ref, self.type.value, self.message)

    @property
    def has_data(self) -> bool:
        return self.data is not _NO_DATA

    def is_scheduled(self) -> bool:
        return self.type == StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type == StateType.PENDING

    def is_running(self) -> bool:
        return self.type == StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type == StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type == StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type == StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type == StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type == StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in TERMINAL_TYPES

    def __repr__(self) -> str:
        """Prefect's form: Completed(), Failed('boom'), Cached(type=COMPLETED)."""
        parts = [repr(self.message)] if self.message else []
        if self.name != self.type.value.title():
            parts.append(f"type={self.type.value}")
        return f"{self.name}({', '.join(parts)})"

    __str__ = __repr__


def _state(type_: StateType, name: str | None, message: str | None, data: Any, **details: Any) -> State:
    return State(type=type_, name=name, message=message, details=StateDetails(**details), data=data)


def Scheduled(scheduled_time: datetime | None = None, message: str | None = None, name: str = "Scheduled", data: Any = _NO_DATA) -> State:
    return _state(StateType.SCHEDULED, name, message, data, scheduled_time=scheduled_time)


def Late(scheduled_time: datetime | None = None, message: str | None = None) -> State:
    return Scheduled(scheduled_time, message, name="Late")


def AwaitingRetry(scheduled_time: datetime | None = None, message: str | None = None) -> State:
    return Scheduled(scheduled_time, message, name="AwaitingRetry")


def Pending(message: str | None = None, name: str = "Pending", data: Any = _NO_DATA) -> State:
    return _state(StateType.PENDING, name, message, data)


def Running(message: str | None = None, name: str = "Running") -> State:
    return _state(StateType.RUNNING, name, message, _NO_DATA)


def Retrying(message: str | None = None) -> State:
    return Running(message, name="Retrying")


def Completed(message: str | None = None, name: str = "Completed", data: Any = _NO_DATA) -> State:
    return _state(StateType.COMPLETED, name, message, data)


def Failed(message: str | None = None, name: str = "Failed", data: Any = _NO_DATA) -> State:
    return _state(StateType.FAILED, name, message, data)


def Crashed(message: str | None = None, name: str = "Crashed", data: Any = _NO_DATA) -> State:
    return _state(StateType.CRASHED, name, message, data)


def Cancelled(message: str | None = None, name: str = "Cancelled", data: Any = _NO_DATA) -> State:
    return _state(StateType.CANCELLED, name, message, data)


def Cancelling(message: str | None = None) -> State:
    return _state(StateType.CANCELLING, "Cancelling", message, _NO_DATA)


def Paused(timeout_seconds: float | None = None, message: str | None = None, name: str = "Paused") -> State:
    timeout = datetime.now(timezone.utc) + timedelta(seconds=timeout_seconds) if timeout_seconds else None
    return _state(StateType.PAUSED, name, message, _NO_DATA, pause_timeout=timeout)


def Suspended(timeout_seconds: float | None = None, message: str | None = None) -> State:
    return Paused(timeout_seconds, message, name="Suspended")
