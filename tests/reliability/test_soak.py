"""Fault 5, the soak: many task runs through 2 workers while a random worker is killed (SIGKILL,
main and pool processes) at a fixed period and replaced.

CI runs a short version (RUNWAY_SOAK_RUNS=1500, a kill every 8 s); `python bench/soak.py` runs
the issue's 10,000 runs with a kill every 60 s. Meanwhile a probe proposes states on runs of its
own and times each proposal (the latency a client sees under this load); on PostgreSQL the
database's connections are counted.

The issue's latency target (p99 under 200 ms) is a speed target, so `bench/soak.py` checks it
(RUNWAY_SOAK_P99_BOUND_MS=200). Here the bound is a stall guard: a proposal that waits a second
behind a lock or a dead worker's transaction fails the suite, while a slow or busy CI machine
(the CI's p99 ranged 40-240 ms on this 2-core box) does not.
"""
from __future__ import annotations

import os
import random
import threading
import time
import uuid

from django.db import connection, connections

from orchestrator.runs.models import FlowRun
from tests.conftest import USING_POSTGRES
from tests.reliability import flows, ledger
from tests.reliability.faults import FlowInThread, assert_attempts_match_ledger, wait_for_executions

RUNS = int(os.environ.get("RUNWAY_SOAK_RUNS", "1500"))
KILL_EVERY = float(os.environ.get("RUNWAY_SOAK_KILL_SECONDS", "8"))
P99_BOUND_MS = float(os.environ.get("RUNWAY_SOAK_P99_BOUND_MS", "1000"))
CONNECTIONS_BOUND = 40  # 2 workers x (main + pool process) + this process, each well under its pool's 20


def _probe(stop: threading.Event, latencies: list[float]) -> None:
    """Create a run and propose Running then Completed, again and again, timing each proposal."""
    from sdk.client import get_client
    from sdk.states import Completed, Pending, Running

    client = get_client()
    flow_id = client.create_flow("soak-probe")
    flow_run_id, _ = client.create_flow_run(flow_id=flow_id, name="probe", state=Running().to_schema())
    while not stop.wait(0.05):
        run_id, _ = client.create_task_run(flow_run_id=flow_run_id, task_key="probe", dynamic_key=uuid.uuid4().hex,
                                           name="probe", state=Pending().to_schema())  # fmt: skip
        for state in (Running(), Completed()):
            started = time.perf_counter()
            client.set_task_run_state(run_id, state.to_schema())
            latencies.append((time.perf_counter() - started) * 1000)


def _connections(stop: threading.Event, counts: list[int]) -> None:
    import psycopg

    name = connection.settings_dict["NAME"]
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        while not stop.wait(1):
            counts.append(admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]).fetchone()[0])


def test_a_soak_with_worker_kills_loses_and_doubles_nothing(start_worker, ledger_group):
    workers = [start_worker(concurrency=1) for _ in range(2)]
    stop, latencies, connection_counts = threading.Event(), [], []
    watchers = [threading.Thread(target=_probe, args=(stop, latencies), daemon=True)]
    if USING_POSTGRES:
        watchers.append(threading.Thread(target=_connections, args=(stop, connection_counts), daemon=True))
    for thread in watchers:
        thread.start()
    started = time.monotonic()
    running = FlowInThread(flows.soak, ledger_group, RUNS)
    wait_for_executions(ledger_group, 1)
    kills = 0
    while running.ended_at is None and time.monotonic() - started < 1800:
        time.sleep(KILL_EVERY)
        if running.ended_at is not None:
            break
        victim = workers.pop(random.randrange(len(workers)))
        victim.kill()
        kills += 1
        workers.append(start_worker(concurrency=1))
    state = running.join(timeout=600)
    stop.set()
    for thread in watchers:
        thread.join()
    connections.close_all()

    flow_run = FlowRun.objects.get(task_runs__id=ledger.entries(ledger_group)[0].run_id)
    task_runs = list(flow_run.task_runs.all())
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    executions = sum(ledger.executions_by_run(ledger_group).values())
    retries = sum(t.run_count - 1 for t in task_runs)
    assert state.result() == sum(range(RUNS))
    assert len(task_runs) == RUNS and all(t.state_name == "Completed" for t in task_runs)
    never_began = assert_attempts_match_ledger(ledger_group, task_runs)
    print(f"\n[fault 5] {RUNS} runs, {kills} kills in {time.monotonic() - started:.0f} s: {executions} executions = "
          f"{len(task_runs)} runs + {retries} recorded retries - {never_began} attempts killed before their body "
          f"began; proposal latency p50 {latencies[len(latencies) // 2]:.1f} ms, p99 {p99:.1f} ms over "
          f"{len(latencies)} proposals (bound {P99_BOUND_MS:g} ms); database connections max {max(connection_counts, default=0)}")  # fmt: skip
    assert p99 < P99_BOUND_MS
    assert max(connection_counts, default=0) <= CONNECTIONS_BOUND
