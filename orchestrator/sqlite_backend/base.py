"""Django's SQLite backend, waiting for SQLite's write lock in short steps.

Why: SQLite lets one connection write at a time. A writer that finds the lock
taken calls SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ... up
to 100 ms between tries, however soon the lock is freed. A flow's process and
every worker process write every few milliseconds, so writers kept oversleeping
locks freed long before: in bench/celery_throughput.py a worker's claim of a task
run took 0.15 ms at the median but 1.3 ms on average, and some waits 430 ms.

Here SQLite's own wait is off (busy_timeout 0). A statement that finds the lock
taken while its connection is outside a transaction (a BEGIN, or a write in
autocommit mode) fails before changing anything, so it is run again after
0.1 ms, then 0.2, 0.4, ... at most 2 ms apart, for as long as the `timeout`
option allows (30 s by default); then the usual "database is locked" error is
raised. Inside a transaction nothing is retried: every transaction here begins
IMMEDIATE (holding the lock from its start), so a writer there never waits.
"""
from __future__ import annotations

import sqlite3
import time
from typing import Any

from django.db.backends.sqlite3 import base

FIRST_PAUSE, LONGEST_PAUSE = 0.0001, 0.002  # seconds between tries of a statement that found the lock taken


def _locked(exc: sqlite3.OperationalError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _retrying(connection: Connection, run: Any, *args: Any) -> Any:
    """Run `run(*args)`; while it finds the write lock taken outside a transaction, again, until the deadline."""
    deadline, pause = None, FIRST_PAUSE
    while True:
        try:
            return run(*args)
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or connection.in_transaction:
                raise
            now = time.monotonic()
            deadline = deadline or now + connection.lock_timeout
            if now >= deadline:
                raise
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, LONGEST_PAUSE)


class Cursor(sqlite3.Cursor):
    """A driver cursor (what orchestrator/runs/store.py writes with) that waits for the lock as above."""

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        return _retrying(self.connection, super().execute, sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any) -> Any:
        rows = list(seq_of_parameters)  # a generator would be spent by a failed first try
        return _retrying(self.connection, super().executemany, sql, rows)


class Connection(sqlite3.Connection):
    """The driver's connection, with the lock wait of its cursors and how long it may last."""

    lock_timeout = 30.0

    def cursor(self, factory: type = Cursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = ()) -> Any:  # the driver's own does not call cursor()
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any) -> Any:
        return self.cursor().executemany(sql, seq_of_parameters)


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, with the same wait."""

    def execute(self, query: str, params: Any = None) -> Any:
        return _retrying(self.connection, super().execute, query, params)

    def executemany(self, query: str, param_list: Any) -> Any:
        return _retrying(self.connection, super().executemany, query, list(param_list))


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["factory"] = Connection
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Connection:
        connection = super().get_new_connection(conn_params)  # SQLite's wait still on for the set-up
        connection.lock_timeout = float(conn_params.get("timeout", 5.0))
        connection.execute("PRAGMA busy_timeout = 0")
        return connection

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=CursorWrapper)
