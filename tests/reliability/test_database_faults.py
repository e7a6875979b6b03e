"""Fault 4: every database connection is terminated, again and again, while a flow's task runs
propose their states from the flow's process and from two workers.

PostgreSQL only: SQLite has no server whose connections could be cut. The clients see a lost
connection, reconnect and propose again (the proposal's transition key makes a repeat an
answer, never a second write); nothing is left half-written.
"""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from orchestrator.runs.models import FlowRun, TaskRun
from tests.conftest import USING_POSTGRES
from tests.reliability import flows, ledger
from tests.reliability.faults import FlowInThread, assert_attempts_match_ledger, wait_for_executions

pytestmark = pytest.mark.skipif(not USING_POSTGRES, reason="needs PostgreSQL (RUNWAY_TEST_POSTGRES=1)")
N = 300


def _terminate_all(stop: threading.Event, counts: list[int]) -> None:
    """Terminate every other backend of this database every 0.3 s until `stop`."""
    import psycopg

    name = connection.settings_dict["NAME"]
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        while not stop.wait(0.3):
            rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = %s AND pid <> pg_backend_pid()", [name]).fetchall()  # fmt: skip
            counts.append(len(rows))


def _terminate_connections_for(seconds: float) -> list[int]:
    """Terminate every connection of the database every 0.3 s for `seconds`; how many per round."""
    stop, counts = threading.Event(), []
    killer = threading.Thread(target=_terminate_all, args=(stop, counts), daemon=True)
    killer.start()
    time.sleep(seconds)
    stop.set()
    killer.join()
    connections.close_all()  # this thread's connection was terminated too
    return counts


def test_terminated_connections_are_survived_with_nothing_half_written(start_worker, ledger_group):
    for _ in range(2):
        start_worker(concurrency=1)
    running = FlowInThread(flows.counted_fan_out, ledger_group, N)
    wait_for_executions(ledger_group, 10)
    counts = _terminate_connections_for(6)
    state = running.join(timeout=180)
    _assert_nothing_half_written(ledger_group, counts, state.result())


def _assert_nothing_half_written(ledger_group: str, counts: list[int], result: int) -> None:
    flow_run = FlowRun.objects.get(task_runs__id=ledger.entries(ledger_group)[0].run_id)
    task_runs = list(flow_run.task_runs.select_related("state"))
    print(f"\n[fault 4] {sum(counts)} connections terminated in {len(counts)} rounds; flow run "
          f"{flow_run.state_name}; {len(task_runs)} task runs, {sum(t.run_count - 1 for t in task_runs)} retries")  # fmt: skip
    assert sum(counts) > 0
    assert result == sum(range(N)) and flow_run.state_name == "Completed"
    assert len(task_runs) == N and all(t.state_name == "Completed" for t in task_runs)
    for run in [flow_run, *task_runs]:  # the current state is the newest state row, and agrees with the run's columns
        newest = run.states.order_by("-timestamp").first()
        assert run.state_id == newest.id and (run.state_type, run.state_name) == (newest.type, newest.name)
    assert_attempts_match_ledger(ledger_group, task_runs)
    assert not TaskRun.objects.filter(state_type="RUNNING", heartbeat__isnull=False,
                                      heartbeat__lt=flow_run.state.timestamp).exists()  # fmt: skip
