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
import sqlite3
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
    tags: list[str] = field(default_factory=list)


_TABLES = {"flow": ("runs_flowrun", "runs_flowrunstate", "flow_run_id"),
           "task": ("runs_taskrun", "runs_taskrunstate", "task_run_id")}  # fmt: skip
_BOOKKEEPING = ["run_count", "start_time", "end_time", "total_run_time", "expected_start_time", "next_scheduled_start_time"]
_STATE_COLUMNS = ["id", "type", "name", "message", "timestamp", "details", "result"]


MAX_PARAMETERS = 10_000  # in one multi-row INSERT (Db.insert_rows)


class Db:
    """Django's default connection for one service call: looked up once, not per statement or value."""

    def __init__(self) -> None:
        self.wrapper = connections["default"]
        self.wrapper.ensure_connection()
        self.postgres = self.wrapper.vendor == "postgresql"

    def execute(self, sql: str, params: list[Any], fetch: bool = False) -> Any:
        """One statement on the DB-API cursor (same transaction as Django's), errors raised as Django's."""
        with self.wrapper.wrap_database_errors:
            cursor = self._cursor()
            try:
                cursor.execute(sql, params)
                return cursor.fetchone() if fetch else None
            finally:
                cursor.close()

    def fetch_all(self, sql: str, params: list[Any]) -> list[tuple]:
        """One query; every row it answers."""
        with self.wrapper.wrap_database_errors:
            cursor = self._cursor()
            try:
                cursor.execute(sql, params)
                return cursor.fetchall()
            finally:
                cursor.close()

    def execute_count(self, sql: str, params: list[Any]) -> int:
        """One statement; returns how many rows it changed."""
        with self.wrapper.wrap_database_errors:
            cursor = self._cursor()
            try:
                cursor.execute(sql, params)
                return cursor.rowcount
            finally:
                cursor.close()

    def insert_rows(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        """Insert `rows` with multi-row INSERT statements, as few as the driver's parameter limit allows.

        Why not executemany: the sqlite3 module lets go of the GIL for every row, and in
        a process whose other threads are busy (a flow's dispatchers) each row then
        waits for the GIL again, up to sys.getswitchinterval() (5 ms), while holding
        SQLite's write lock, which every other process is waiting for. 200 log lines
        took 1.3 s that way next to three busy threads, 0.11 s as one statement.
        """
        per_statement = max(1, self._max_parameters() // len(columns))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            self.execute(_insert_rows_sql(table, columns, len(chunk), self.vendor), [v for row in chunk for v in row])

    def _max_parameters(self) -> int:
        """How many parameters one statement carries: 10,000, or SQLite's compiled limit if lower
        (999 before 3.32). The drivers take more (psycopg 65,535; Debian's SQLite 250,000), but a
        huge statement only costs longer to parse, and each size is compiled anew."""
        if self.postgres:
            return MAX_PARAMETERS
        return min(MAX_PARAMETERS, self.wrapper.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))

    def _cursor(self) -> Any:
        """On PostgreSQL a server-side binding cursor: parameters travel apart from the statement,
        so psycopg does not quote them into the SQL text in Python (Django's cursors do), and a
        statement run often is prepared once per connection."""
        if self.postgres:
            import psycopg

            return psycopg.Cursor(self.wrapper.connection)
        return self.wrapper.connection.cursor()

    # Values as Django's own fields store them.
    def uuid(self, value: UUID | None) -> Any:
        """PostgreSQL stores uuid; Django keeps UUIDs on SQLite as 32 hex digits."""
        return value if value is None or self.postgres else value.hex

    def dt(self, value: datetime | None) -> Any:
        """PostgreSQL takes aware datetimes; Django keeps them on SQLite as naive UTC text."""
        if value is None or self.postgres:
            return value
        return str(value.astimezone(timezone.utc).replace(tzinfo=None))

    def json(self, value: Any) -> Any:
        if value is None:
            return None
        return self.wrapper.ops.adapt_json_value(value, None) if self.postgres else json.dumps(value)

    def value(self, value: Any) -> Any:
        if isinstance(value, UUID):
            return self.uuid(value)
        if isinstance(value, (dict, list)):
            return self.json(value)
        return value

    @property
    def vendor(self) -> str:
        return "postgresql" if self.postgres else "sqlite"


def load_run_for_update(db: Db, kind: str, run_id: UUID) -> tuple[RunRow, State | None] | None:
    """The run and its current state, locked until the transaction ends (row lock on PostgreSQL).

    On PostgreSQL the lock is taken first, by a statement of its own: a single
    `SELECT ... JOIN ... FOR UPDATE` that waited for a concurrent writer's lock
    re-reads the run's row once that writer commits, but not the state row it
    joins, which its snapshot cannot see: it would answer the new pointer with
    the old (or no) state, and two concurrent proposals would both be applied.
    (SQLite's IMMEDIATE transaction holds the database's write lock from its start.)
    """
    if db.postgres:
        locked = db.execute(_lock_sql(kind), [db.uuid(run_id)], fetch=True)
        if locked is None:
            return None
    row = db.execute(_select_sql(kind, db.vendor), [db.uuid(run_id)], fetch=True)
    return None if row is None else _parse_run(row, kind == "task")


@lru_cache(maxsize=None)
def _lock_sql(kind: str) -> str:
    return f"SELECT id FROM {_TABLES[kind][0]} WHERE id = %s FOR UPDATE"


def flow_run_summary(db: Db, flow_run_id: UUID) -> FlowRunSummary | None:
    """What the task rules read of a new task run's flow run; None if there is no such flow run."""
    sql = _placeholders("SELECT state_type, state_name, run_count FROM runs_flowrun WHERE id = %s", db.vendor)
    row = db.execute(sql, [db.uuid(flow_run_id)], fetch=True)
    return FlowRunSummary(*row) if row else None


@lru_cache(maxsize=None)
def _select_sql(kind: str, vendor: str) -> str:
    run_table, state_table, _ = _TABLES[kind]
    columns = ["r.id", "r.name", *(f"r.{c}" for c in _BOOKKEEPING), "r.empirical_policy", "r.pid",
               *(f"s.{c}" for c in _STATE_COLUMNS)]  # fmt: skip
    joins = f"LEFT JOIN {state_table} s ON s.id = r.state_id"
    if kind == "task":
        columns += ["r.flow_run_run_count", "r.flow_run_id", "f.state_type", "f.state_name", "f.run_count", "r.tags"]
        joins += " LEFT JOIN runs_flowrun f ON f.id = r.flow_run_id"
    return _placeholders(f"SELECT {', '.join(columns)} FROM {run_table} r {joins} WHERE r.id = %s", vendor)


def _parse_run(row: tuple, task: bool) -> tuple[RunRow, State | None]:
    run = RunRow(
        id=_uuid(row[0]), name=row[1], run_count=row[2], start_time=_dt(row[3]), end_time=_dt(row[4]),
        total_run_time=row[5], expected_start_time=_dt(row[6]), next_scheduled_start_time=_dt(row[7]),
        empirical_policy=_json(row[8]) or {}, pid=row[9],
    )  # fmt: skip
    state = _parse_state(row[10:17]) if row[10] is not None else None
    if task:
        run.flow_run_run_count, run.flow_run_id = row[17], _uuid(row[18])
        if run.flow_run_id is not None:
            run.flow_run = FlowRunSummary(state_type=row[19], state_name=row[20], run_count=row[21])
        run.tags = _json(row[22]) or []
    return run, state


def _parse_state(values: tuple) -> State:
    """A State from the _STATE_COLUMNS of a state row."""
    return State(
        id=_uuid(values[0]), type=StateType(values[1]), name=values[2], message=values[3] or None,
        timestamp=_dt(values[4]), details=StateDetails.from_dict(_json(values[5])), result=_json(values[6]),
    )  # fmt: skip


def final_task_run_states_since(db: Db, flow_run_id: UUID, types: tuple[str, ...],
                                since: datetime | None) -> list[tuple[UUID, State]]:  # fmt: skip
    """The flow run's task runs in one of `types` whose state was set at or after `since`, oldest
    first, with their states (on the index of flow run and state time). A flow waiting on its
    runs on workers asks this ten times a second; the ORM spent more building the query and a
    model per row than the database spent answering."""
    sql = _final_since_sql(len(types), since is not None, db.vendor)
    params = [db.uuid(flow_run_id), *types, *([db.dt(since)] if since is not None else [])]
    return [(_uuid(row[0]), _parse_state(row[1:])) for row in db.fetch_all(sql, params)]


@lru_cache(maxsize=None)
def _final_since_sql(type_count: int, since: bool, vendor: str) -> str:
    columns = ", ".join(f"s.{c}" for c in _STATE_COLUMNS)
    sql = (f"SELECT r.id, {columns} FROM runs_taskrun r JOIN runs_taskrunstate s ON s.id = r.state_id "
           f"WHERE r.flow_run_id = %s AND r.state_type IN ({', '.join(['%s'] * type_count)})")  # fmt: skip
    if since:
        sql += " AND r.state_timestamp >= %s"
    return _placeholders(sql + " ORDER BY r.state_timestamp", vendor)


def state_with_transition_key(db: Db, kind: str, run_id: UUID, key: str) -> str | None:
    """The name of the run's state written for the proposal with this transition key, if any
    (a run has a few states, found by the (run, timestamp) index; the key is read from their details)."""
    _, state_table, run_column = _TABLES[kind]
    key_of = "details ->> 'transition_key'" if db.postgres else "json_extract(details, '$.transition_key')"
    sql = _placeholders(f"SELECT name FROM {state_table} WHERE {run_column} = %s AND {key_of} = %s LIMIT 1", db.vendor)
    row = db.execute(sql, [db.uuid(run_id), key], fetch=True)
    return row[0] if row else None


def claim_waiting_task_run(db: Db, run_id: UUID, *, worker: str, hostname: str, pid: int | None,
                           dispatch: Any, now: datetime, quiet_since: datetime) -> bool:  # fmt: skip
    """Make `worker` the holder of a Pending or Scheduled task run that no live worker holds
    (none, this one, or one quiet since before `quiet_since`); False if the run is not such a run."""
    sql = _placeholders(
        "UPDATE runs_taskrun SET worker = %s, hostname = %s, pid = %s, heartbeat = %s, dispatch = %s "
        "WHERE id = %s AND state_type IN ('PENDING', 'SCHEDULED') "
        "AND (worker = '' OR worker = %s OR heartbeat IS NULL OR heartbeat < %s)", db.vendor)  # fmt: skip
    params = [worker, hostname, pid, db.dt(now), db.json(dispatch), db.uuid(run_id), worker, db.dt(quiet_since)]
    return db.execute_count(sql, params) == 1


def insert_state(db: Db, kind: str, run_id: UUID, state: State) -> None:
    _, state_table, run_column = _TABLES[kind]
    db.execute(_insert_sql(state_table, (*_STATE_COLUMNS, run_column), db.vendor), _state_values(db, run_id, state))


def _state_values(db: Db, run_id: UUID, state: State) -> list[Any]:
    return [
        db.uuid(state.id), state.type.value, state.name, state.message or "", db.dt(state.timestamp),
        db.json(state.details.to_dict()), db.json(state.result), db.uuid(run_id),
    ]  # fmt: skip


def update_run(db: Db, kind: str, run: RunRow, state: State) -> None:
    """Point the run at its new state and save its bookkeeping."""
    assignments = {
        "state_id": db.uuid(state.id), "state_type": state.type.value, "state_name": state.name,
        "state_timestamp": db.dt(state.timestamp), "run_count": run.run_count,
        "start_time": db.dt(run.start_time), "end_time": db.dt(run.end_time),
        "total_run_time": run.total_run_time, "expected_start_time": db.dt(run.expected_start_time),
        "next_scheduled_start_time": db.dt(run.next_scheduled_start_time),
    }  # fmt: skip
    if kind == "task":
        assignments["flow_run_run_count"] = run.flow_run_run_count
    sql = _update_sql(_TABLES[kind][0], tuple(assignments), db.vendor)
    db.execute(sql, [*assignments.values(), db.uuid(run.id)])


def insert_run(db: Db, kind: str, run: RunRow, state: State, fields: dict[str, Any]) -> None:
    """Insert a new run already pointing at its first state."""
    values = _run_values(db, kind, run, state, fields)
    db.execute(_insert_sql(_TABLES[kind][0], tuple(values), db.vendor), list(values.values()))


@dataclass
class Rows:
    """Rows of one table, their values made before the write transaction that inserts them (`insert`)."""

    table: str
    columns: tuple[str, ...]
    values: list[list[Any]]


def insert(db: Db, rows: Rows) -> None:
    if rows.values:
        db.insert_rows(rows.table, rows.columns, rows.values)


def new_runs(db: Db, kind: str, rows: list[tuple[RunRow, State, dict[str, Any]]]) -> Rows:
    """New runs, each already pointing at its first state; every row's `fields` must have the
    same keys (the services build them so)."""
    values = [_run_values(db, kind, *row) for row in rows]
    return Rows(_TABLES[kind][0], tuple(values[0]) if values else (), [list(v.values()) for v in values])


def new_states(db: Db, kind: str, rows: list[tuple[UUID, State]]) -> Rows:
    """The states of several runs, (run id, state) each."""
    _, state_table, run_column = _TABLES[kind]
    return Rows(state_table, (*_STATE_COLUMNS, run_column), [_state_values(db, run_id, state) for run_id, state in rows])


def _run_values(db: Db, kind: str, run: RunRow, state: State, fields: dict[str, Any]) -> dict[str, Any]:
    values = {
        "id": db.uuid(run.id), "name": run.name, "empirical_policy": db.json(run.empirical_policy),
        "pid": run.pid, "state_id": db.uuid(state.id), "state_type": state.type.value,
        "state_name": state.name, "state_timestamp": db.dt(state.timestamp), "run_count": run.run_count,
        "start_time": db.dt(run.start_time), "end_time": db.dt(run.end_time),
        "total_run_time": run.total_run_time, "expected_start_time": db.dt(run.expected_start_time),
        "next_scheduled_start_time": db.dt(run.next_scheduled_start_time), "created": db.dt(state.timestamp),
        **{column: db.value(value) for column, value in fields.items()},
    }  # fmt: skip
    if kind == "task":
        values["flow_run_run_count"] = run.flow_run_run_count
    return values


_LOG_COLUMNS = ("flow_run_id", "task_run_id", "level", "name", "message", "timestamp")


def new_logs(db: Db, logs: list[dict[str, Any]]) -> Rows:
    """Log lines as rows (building a model instance per line cost more than storing it)."""
    return Rows("runs_log", _LOG_COLUMNS, [
        [db.uuid(e["flow_run_id"]), db.uuid(e["task_run_id"]), e["level"], e["name"], e["message"], db.dt(e["timestamp"])]
        for e in logs
    ])  # fmt: skip


@lru_cache(maxsize=None)
def _insert_sql(table: str, columns: tuple[str, ...], vendor: str) -> str:
    return _placeholders(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", vendor)


@lru_cache(maxsize=256)
def _insert_rows_sql(table: str, columns: tuple[str, ...], count: int, vendor: str) -> str:
    row = f"({', '.join(['%s'] * len(columns))})"
    return _placeholders(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * count)}", vendor)


@lru_cache(maxsize=None)
def _update_sql(table: str, columns: tuple[str, ...], vendor: str) -> str:
    return _placeholders(f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in columns)} WHERE id = %s", vendor)


def _placeholders(sql: str, vendor: str) -> str:
    """The driver's parameter style: sqlite3 takes ?, psycopg %s."""
    return sql.replace("%s", "?") if vendor == "sqlite" else sql


# --- values read back ---------------------------------------------------------------

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
