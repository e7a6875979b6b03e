"""Fault 3: the broker restarts with 100 task runs queued and 10 running.

Redis: a redis-server of the test's own that keeps nothing on disk, killed and started again,
so its queued messages are lost and must be sent again (the flow resends runs still Pending,
RUNWAY_RESEND_SECONDS). RabbitMQ: the local broker's application stopped and started
(`rabbitmqctl stop_app/start_app`); its durable queues keep their persistent messages. Either
way the same workers reconnect by themselves and every run ends Completed, each attempt run once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.runs.models import FlowRun
from tests.conftest import free_port
from tests.reliability import ledger
from tests.reliability.faults import assert_attempts_match_ledger, wait_for_executions

REPO = Path(__file__).resolve().parents[2]
RABBITMQ = os.environ.get("RUNWAY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
RUNNING, QUEUED = 10, 100
BOUND = 300  # seconds for all 110 runs to end


@contextmanager
def private_redis() -> Iterator[tuple[str, Callable[[], None]]]:
    """(broker URL, restart) of a redis-server of this test's own."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(0.5)

    def restart() -> None:
        processes[-1].kill()
        processes[-1].wait()
        time.sleep(2)
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        processes[-1].kill()


@contextmanager
def local_rabbitmq() -> Iterator[tuple[str, Callable[[], None]]]:
    def restart() -> None:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
        time.sleep(2)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)

    yield RABBITMQ, restart


BROKERS = {"redis": private_redis, "rabbitmq": local_rabbitmq}


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_every_run_ends_once_when_the_broker_restarts_mid_flow(start_worker, ledger_group, broker):
    if not shutil.which({"redis": "redis-server", "rabbitmq": "rabbitmqctl"}[broker]):
        pytest.skip(f"needs {broker} installed (scripts/ensure-{broker})")
    with BROKERS[broker]() as (url, restart):
        workers = [start_worker(concurrency=5, RUNWAY_BROKER_URL=url) for _ in range(2)]
        seconds = [5.0] * RUNNING + [0.05] * QUEUED
        code = ("from tests.reliability import flows\n"
                f"print(flows.sleepers({ledger_group!r}, {seconds!r}))")  # fmt: skip
        flow = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "RUNWAY_BROKER_URL": url},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_for_executions(ledger_group, RUNNING, timeout=120)
        restarted = time.monotonic()
        restart()
        try:
            out, err = flow.communicate(timeout=BOUND)
        except subprocess.TimeoutExpired:
            flow.kill()
            out, err = flow.communicate()
            raise AssertionError(f"the flow hangs:\n{err[-3000:]}\n{workers[0].output()[-3000:]}") from None
        took = time.monotonic() - restarted
    assert flow.returncode == 0, err[-3000:]
    assert out.strip().splitlines()[-1] == str(sum(range(RUNNING + QUEUED)))
    task_runs = list(FlowRun.objects.get(task_runs__id=ledger.entries(ledger_group)[0].run_id).task_runs.all())
    retried = sum(t.run_count - 1 for t in task_runs)
    print(f"\n[fault 3, {broker}] {len(task_runs)} runs Completed {took:.1f} s after the restart; "
          f"{sum(ledger.executions_by_run(ledger_group).values())} executions, {retried} recorded retries")  # fmt: skip
    assert len(task_runs) == RUNNING + QUEUED and all(t.state_name == "Completed" for t in task_runs)
    assert_attempts_match_ledger(ledger_group, task_runs)
    assert all(worker.process.poll() is None for worker in workers)  # the same workers, reconnected
