"""The executions ledger: how many times each (run, attempt) really ran, apart from the state rows.

Task and flow code under test calls `record()` as its first step. The row's key is
(run id, attempt), the attempt being the run's `run_count` as the engine saw it when
it started the body; a second execution of the same attempt does not fail, it counts
(`executions` goes to 2), so a test sees a doubled run instead of a crash that hides
it. `group` keeps one test's rows apart from another's.

The table lives in the test session's database (SQLite or PostgreSQL) and is written
over Django's connection, from the test process and from worker and agent processes
alike; it is not one of Runway's models.
"""
from __future__ import annotations

from dataclasses import dataclass

TABLE = "reliability_ledger"


def ensure_ledger() -> None:
    """Create the ledger table if this database has none (idempotent; run once per test session)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            " run_id VARCHAR(36) NOT NULL, attempt INTEGER NOT NULL, grp VARCHAR(100) NOT NULL,"
            " executions INTEGER NOT NULL, pid INTEGER NOT NULL,"
            " PRIMARY KEY (run_id, attempt))"
        )


def record(group: str) -> tuple[str, int]:
    """Count one execution of the run this code is in (a task run, else the flow run): (run id, attempt)."""
    import os
    import time

    from django.db import InterfaceError, OperationalError, connection

    from sdk.context import FlowRunContext, TaskRunContext

    context = TaskRunContext.get()
    run = context.task_run if context else FlowRunContext.get().flow_run
    key = (str(run.id), int(run.run_count))
    for attempt in range(20):  # the database-fault test terminates connections: the count must still land
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {TABLE} (run_id, attempt, grp, executions, pid) VALUES (%s, %s, %s, 1, %s)"
                    f" ON CONFLICT (run_id, attempt) DO UPDATE SET executions = {TABLE}.executions + 1",
                    [key[0], key[1], group, os.getpid()],
                )
            return key
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.05 * (attempt + 1))
    raise RuntimeError(f"could not count run {key[0]} attempt {key[1]} in the ledger")


@dataclass(frozen=True)
class Entry:
    run_id: str
    attempt: int
    executions: int
    pid: int


def entries(group: str) -> list[Entry]:
    """Every (run, attempt) of `group` that ran, with how many times it did."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT run_id, attempt, executions, pid FROM {TABLE} WHERE grp = %s", [group])
        return [Entry(*row) for row in cursor.fetchall()]


def doubled(group: str) -> list[Entry]:
    """The attempts of `group` that ran more than once: always expected empty."""
    return [entry for entry in entries(group) if entry.executions != 1]


def executions_by_run(group: str) -> dict[str, int]:
    """run id -> executions of all its attempts."""
    counts: dict[str, int] = {}
    for entry in entries(group):
        counts[entry.run_id] = counts.get(entry.run_id, 0) + entry.executions
    return counts
