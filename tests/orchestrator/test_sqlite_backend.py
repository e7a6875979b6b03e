"""The SQLite backend's own wait for the write lock (orchestrator/sqlite_backend).

SQLite's busy handler is off there, so without the backend's retries a write that
finds the lock taken fails at once with "database is locked": each test below
holds the lock from a second connection and checks what the waiting one does.
"""
from __future__ import annotations

import sqlite3
import threading

import pytest

from orchestrator.sqlite_backend.base import Connection
from tests.conftest import USING_POSTGRES


def _connect(path, lock_timeout: float) -> Connection:
    connection = sqlite3.connect(path, factory=Connection, isolation_level=None, check_same_thread=False)
    connection.lock_timeout = lock_timeout
    connection.execute("PRAGMA busy_timeout = 0")
    return connection


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "locks.sqlite3"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    setup.close()
    return path


def _hold_lock(path, release: threading.Event, after: float) -> threading.Thread:
    """A second connection holding the write lock (an IMMEDIATE transaction with a row in it)
    until `release` is set or `after` seconds have passed, then committing."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t (who) VALUES ('holder')")

    def commit_later() -> None:
        release.wait(after)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=commit_later)
    thread.start()
    return thread


def test_a_write_outside_a_transaction_waits_for_the_lock_then_runs(database):
    waiter = _connect(database, lock_timeout=30)
    holder = _hold_lock(database, threading.Event(), after=0.3)
    waiter.execute("INSERT INTO t (who) VALUES ('waiter')")  # fails at once if not retried
    holder.join()
    assert sorted(row[0] for row in waiter.execute("SELECT who FROM t")) == ["holder", "waiter"]


def test_a_transaction_s_begin_waits_for_the_lock(database):
    waiter = _connect(database, lock_timeout=30)
    holder = _hold_lock(database, threading.Event(), after=0.3)
    waiter.execute("BEGIN IMMEDIATE")
    waiter.cursor().executemany("INSERT INTO t (who) VALUES (?)", iter([("a",), ("b",)]))
    waiter.execute("COMMIT")
    holder.join()
    assert waiter.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3


def test_past_the_timeout_the_write_fails_and_the_holder_s_work_stays(database):
    waiter = _connect(database, lock_timeout=0.3)
    release = threading.Event()
    holder = _hold_lock(database, release, after=60)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        waiter.execute("INSERT INTO t (who) VALUES ('waiter')")
    release.set()
    holder.join()
    assert [row[0] for row in waiter.execute("SELECT who FROM t")] == ["holder"]


def test_inside_a_deferred_transaction_a_locked_write_is_not_retried(database):
    """Its snapshot may be stale: only rolling back helps, so the error goes straight to the caller."""
    waiter = _connect(database, lock_timeout=30)
    waiter.execute("BEGIN")
    waiter.execute("SELECT COUNT(*) FROM t").fetchone()
    holder = _hold_lock(database, threading.Event(), after=1.0)  # a retry would succeed after it
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        waiter.execute("INSERT INTO t (who) VALUES ('waiter')")
    waiter.execute("ROLLBACK")
    holder.join()


@pytest.mark.skipif(USING_POSTGRES, reason="the SQLite backend only")
def test_django_s_connection_is_the_backend_with_sqlite_s_own_wait_off():
    from django.db import connection

    connection.ensure_connection()
    assert isinstance(connection.connection, Connection)
    assert connection.connection.lock_timeout == 30.0
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 0
