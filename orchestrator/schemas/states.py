"""State types, states, and the answer the orchestrator gives to a proposed state."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID


class StateType(str, enum.Enum):
    """The kind of a state; a state's name refines it (Late, AwaitingRetry, Cached...)."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    def __str__(self) -> str:
        return self.value


TERMINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


class SetStateStatus(str, enum.Enum):
    """How the orchestrator answered a proposal."""

    ACCEPT = "ACCEPT"  # the proposed state is now the run's state
    REJECT = "REJECT"  # the run is in the returned state instead (AwaitingRetry, Cached, unchanged)
    WAIT = "WAIT"  # propose again after `delay_seconds`
    ABORT = "ABORT"  # stop orchestrating this run

    def __str__(self) -> str:
        return self.value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass
class StateDetails:
    """Facts attached to a state that rules read or write."""

    scheduled_time: datetime | None = None  # when a Scheduled run may start
    cache_key: str | None = None  # proposed with Running / Completed for caching
    cache_expiration: datetime | None = None
    refresh_cache: bool = False  # skip cache retrieval, still insert
    retriable: bool = True  # False when the task's retry condition said no
    transition_key: str | None = None  # idempotency key: a repeated proposal is answered, not re-applied
    pause_timeout: datetime | None = None
    pause_key: str | None = None
    pause_reschedule: bool = False  # a suspended run: its process ends; resumed, it is scheduled to run again
    # The id of the state the proposer saw last (as text): a proposal that follows a state the run has
    # since left comes from a process that lost the run (a worker presumed dead), and is not applied.
    from_state_id: str | None = None

    _DATETIMES = ("scheduled_time", "cache_expiration", "pause_timeout")
    _STRINGS = ("cache_key", "transition_key", "pause_key", "from_state_id")
    _BOOLEANS = ("refresh_cache", "retriable", "pause_reschedule")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, omitting defaults to keep state rows small."""
        out: dict[str, Any] = {}
        for name, default in _DETAIL_DEFAULTS:
            value = getattr(self, name)
            if value != default:
                out[name] = _iso(value) if name in self._DATETIMES else value
        return out

    def copy(self) -> StateDetails:
        """A copy to change without touching this one (dataclasses.replace costs several times more)."""
        clone = object.__new__(StateDetails)
        clone.__dict__.update(self.__dict__)
        return clone

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, strict: bool = False) -> StateDetails:
        """Details from JSON. Input from a client is `strict`: an unknown name is an error. Details read
        back (a stored row, a server's answer) may come from a newer Runway: unknown names are skipped."""
        data = dict(data or {})
        unknown = set(data) - _DETAIL_NAMES
        if unknown and strict:
            raise ValueError(f"unknown state detail(s): {', '.join(sorted(unknown))}")
        for name in unknown:
            del data[name]
        for name in cls._DATETIMES:
            if not isinstance(data.get(name), (str, datetime, type(None))):
                raise ValueError(f"{name} must be an ISO 8601 date and time, got {data[name]!r}")
            data[name] = _parse_dt(data.get(name))
        for name in cls._STRINGS:
            if not isinstance(data.get(name), (str, type(None))) or len(data.get(name) or "") > 255:
                raise ValueError(f"{name} must be a string of at most 255 characters, got {data[name]!r:.80}")
        for name in cls._BOOLEANS:
            if name in data and not isinstance(data[name], bool):
                raise ValueError(f"{name} must be true or false, got {data[name]!r}")
        return cls(**data)


_DETAIL_DEFAULTS = tuple((f.name, f.default) for f in fields(StateDetails))
_DETAIL_NAMES = frozenset(name for name, _ in _DETAIL_DEFAULTS)


@dataclass
class State:
    """A run's state: what the client proposes and what the orchestrator records.

    `result` is a reference to the run's result (or exception) as stored, never
    the value itself: {"type": "json", "value": ...}, {"type": "file", ...}.
    """

    type: StateType
    name: str | None = None
    message: str | None = None
    timestamp: datetime | None = None
    details: StateDetails = field(default_factory=StateDetails)
    result: dict[str, Any] | None = None
    id: UUID | None = None

    def __post_init__(self) -> None:
        self.type = StateType(self.type)
        if self.name is None:
            self.name = self.type.value.title()

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def copy(self, **changes: Any) -> State:
        clone = object.__new__(State)
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(changes)
        return clone

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id) if self.id else None,
            "type": self.type.value,
            "name": self.name,
            "message": self.message,
            "timestamp": _iso(self.timestamp),
            "details": self.details.to_dict(),
            "result": self.result,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        return cls(
            type=StateType(data["type"]),
            name=data.get("name"),
            message=data.get("message"),
            timestamp=_parse_dt(data.get("timestamp")),
            details=StateDetails.from_dict(data.get("details")),
            result=data.get("result"),
            id=UUID(str(data["id"])) if data.get("id") else None,
        )


@dataclass
class OrchestrationResult:
    """The orchestrator's answer: the status, the run's state now, why, for WAIT how long, and the
    run's run_count now (the attempt a process that starts the run is in, wherever earlier ones ran)."""

    status: SetStateStatus
    state: State | None
    reason: str | None = None
    delay_seconds: float | None = None
    run_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["state"] = self.state.to_dict() if self.state else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrchestrationResult:
        return cls(
            status=SetStateStatus(data["status"]),
            state=State.from_dict(data["state"]) if data.get("state") else None,
            reason=data.get("reason"),
            delay_seconds=data.get("delay_seconds"),
            run_count=data.get("run_count"),
        )
