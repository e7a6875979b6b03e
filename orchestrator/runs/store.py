"""Hand-written SQL for the statements every state change runs.

Why: Django compiles each ORM query anew, which costs 150-400 µs per query on
a small machine, while SQLite or PostgreSQL execute these statements in a few
tens of µs. A task run makes about nine of them, so the ORM alone would cost
several milliseconds per task. These few statements (load a run with its
current state for update, insert a run, insert a state, update a run's
bookkeeping) are written out once here; everything else uses the ORM. They run
on Django's connection, inside the services' `transaction.atomic()` blocks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.db import connections
from django.utils.dateparse import parse_datetime

from orchestrator.schemas import State, StateDetails, StateType


@dataclass
class FlowRunSummary:
    """What task rules read of a task's flow run."""

    state_type: str | None
    state_name: str | None
    run_count: int


@dataclass
class RunRow:
    """The run fields the rules and bookkeeping read and write."""

    id: UUID
    name: str
    run_count: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_run_time: float = 0.0
    expected_start_time: datetime | None = None
    next_scheduled_start_time: datetime | None = None
    empirical_policy: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    flow_run_run_count: int = 0
    flow_run_id: UUID | None = None
    flow_run: FlowRunSummary | None = None


_TABLES = {"flow": ("runs_flowrun", "runs_flowrunstate", "flow_run_id"),
           "task": ("runs_taskrun", "runs_taskrunstate", "task_run_id")}  # fmt: skip
_BOOKKEEPING = ["run_count", "start_time", "end_time", "total_run_time", "expected_start_time", "next_scheduled_start_time"]
_STATE_COLUMNS = ["id", "type", "name", "message", "timestamp", "details", "result"]


def load_run_for_update(kind: str, run_id: UUID) -> tuple[RunRow, State | None] | None:
    """The run and its current state, locked until the transaction ends (row lock on PostgreSQL)."""
    row = _execute(_select_sql(kind, _vendor()), [_uuid_param(run_id)], fetch=True)
    return None if row is None else _parse_run(row, kind == "task")


@lru_cache(maxsize=None)
def _select_sql(kind: str, vendor: str) -> str:
    run_table, state_table, _ = _TABLES[kind]
    columns = ["r.id", "r.name", *(f"r.{c}" for c in _BOOKKEEPING), "r.empirical_policy", "r.pid",
               *(f"s.{c}" for c in _STATE_COLUMNS)]  # fmt: skip
    joins = f"LEFT JOIN {state_table} s ON s.id = r.state_id"
    if kind == "task":
        columns += ["r.flow_run_run_count", "r.flow_run_id", "f.state_type", "f.state_name", "f.run_count"]
        joins += " LEFT JOIN runs_flowrun f ON f.id = r.flow_run_id"
    lock = " FOR UPDATE OF r" if vendor == "postgresql" else ""
    return _placeholders(f"SELECT {', '.join(columns)} FROM {run_table} r {joins} WHERE r.id = %s{lock}", vendor)


def flow_run_summary(flow_run_id: UUID) -> FlowRunSummary | None:
    """What the task rules read of a new task run's flow run; None if there is no such flow run."""
    sql = _placeholders("SELECT state_type, state_name, run_count FROM runs_flowrun WHERE id = %s", _vendor())
    row = _execute(sql, [_uuid_param(flow_run_id)], fetch=True)
    return FlowRunSummary(*row) if row else None


def _parse_run(row: tuple, task: bool) -> tuple[RunRow, State | None]:
    run = RunRow(
        id=_uuid(row[0]), name=row[1], run_count=row[2], start_time=_dt(row[3]), end_time=_dt(row[4]),
        total_run_time=row[5], expected_start_time=_dt(row[6]), next_scheduled_start_time=_dt(row[7]),
        empirical_policy=_json(row[8]) or {}, pid=row[9],
    )  # fmt: skip
    state_values = row[10:17]
    state = None
    if state_values[0] is not None:
        state = State(
            id=_uuid(state_values[0]), type=StateType(state_values[1]), name=state_values[2],
            message=state_values[3] or None, timestamp=_dt(state_values[4]),
            details=StateDetails.from_dict(_json(state_values[5])), result=_json(state_values[6]),
        )  # fmt: skip
    if task:
        run.flow_run_run_count, run.flow_run_id = row[17], _uuid(row[18])
        if run.flow_run_id is not None:
            run.flow_run = FlowRunSummary(state_type=row[19], state_name=row[20], run_count=row[21])
    return run, state


def insert_state(kind: str, run_id: UUID, state: State) -> None:
    _, state_table, run_column = _TABLES[kind]
    values = [
        _uuid_param(state.id), state.type.value, state.name, state.message or "",
        _dt_param(state.timestamp), _json_param(state.details.to_dict()), _json_param(state.result),
        _uuid_param(run_id),
    ]  # fmt: skip
    _execute(_insert_sql(state_table, (*_STATE_COLUMNS, run_column), _vendor()), values)


def update_run(kind: str, run: RunRow, state: State) -> None:
    """Point the run at its new state and save its bookkeeping."""
    run_table = _TABLES[kind][0]
    assignments = {
        "state_id": _uuid_param(state.id), "state_type": state.type.value, "state_name": state.name,
        "state_timestamp": _dt_param(state.timestamp), "run_count": run.run_count,
        "start_time": _dt_param(run.start_time), "end_time": _dt_param(run.end_time),
        "total_run_time": run.total_run_time, "expected_start_time": _dt_param(run.expected_start_time),
        "next_scheduled_start_time": _dt_param(run.next_scheduled_start_time),
    }  # fmt: skip
    if kind == "task":
        assignments["flow_run_run_count"] = run.flow_run_run_count
    _execute(_update_sql(run_table, tuple(assignments), _vendor()), [*assignments.values(), _uuid_param(run.id)])


def insert_run(kind: str, run: RunRow, state: State, fields: dict[str, Any]) -> None:
    """Insert a new run already pointing at its first state (the foreign key is checked at commit)."""
    run_table = _TABLES[kind][0]
    values = {
        "id": _uuid_param(run.id), "name": run.name, "empirical_policy": _json_param(run.empirical_policy),
        "pid": run.pid, "state_id": _uuid_param(state.id), "state_type": state.type.value,
        "state_name": state.name, "state_timestamp": _dt_param(state.timestamp),
        "run_count": run.run_count, "start_time": _dt_param(run.start_time),
        "end_time": _dt_param(run.end_time), "total_run_time": run.total_run_time,
        "expected_start_time": _dt_param(run.expected_start_time),
        "next_scheduled_start_time": _dt_param(run.next_scheduled_start_time),
        "created": _dt_param(state.timestamp),
        **{column: _param(value) for column, value in fields.items()},
    }  # fmt: skip
    if kind == "task":
        values["flow_run_run_count"] = run.flow_run_run_count
    _execute(_insert_sql(run_table, tuple(values), _vendor()), list(values.values()))


@lru_cache(maxsize=None)
def _insert_sql(table: str, columns: tuple[str, ...], vendor: str) -> str:
    return _placeholders(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", vendor)


@lru_cache(maxsize=None)
def _update_sql(table: str, columns: tuple[str, ...], vendor: str) -> str:
    return _placeholders(f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in columns)} WHERE id = %s", vendor)


def _placeholders(sql: str, vendor: str) -> str:
    """The driver's parameter style: sqlite3 takes ?, psycopg %s."""
    return sql.replace("%s", "?") if vendor == "sqlite" else sql


def _execute(sql: str, params: list[Any], fetch: bool = False) -> Any:
    """Run one statement on the DB-API cursor of Django's connection (same transaction), errors as Django's."""
    connection = connections["default"]
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchone() if fetch else None
        finally:
            cursor.close()


def _vendor() -> str:
    return connections["default"].vendor


# --- values in and out, as Django's own fields would convert them ------------------

def _param(value: Any) -> Any:
    if isinstance(value, UUID):
        return _uuid_param(value)
    if isinstance(value, (dict, list)):
        return _json_param(value)
    return value


def _uuid_param(value: UUID | None) -> Any:
    """PostgreSQL stores uuid; Django keeps UUIDs on SQLite as 32 hex digits."""
    if value is None:
        return None
    return value if _vendor() == "postgresql" else value.hex


def _dt_param(value: datetime | None) -> Any:
    """PostgreSQL takes aware datetimes; Django keeps them on SQLite as naive UTC text."""
    if value is None or _vendor() == "postgresql":
        return value
    return str(value.astimezone(timezone.utc).replace(tzinfo=None))


def _json_param(value: Any) -> Any:
    if value is None:
        return None
    return connections["default"].ops.adapt_json_value(value, None) if _vendor() == "postgresql" else json.dumps(value)


def _uuid(value: Any) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(value)


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime) and value.tzinfo:
        return value
    parsed = parse_datetime(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value
