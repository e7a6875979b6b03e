"""Fault 6: runs due later than the broker holds a message, and a task run longer than RabbitMQ's
consumer timeout.

Redis gives an unacknowledged message to another worker after its visibility timeout (3 s in
this test, RUNWAY_BROKER_VISIBILITY_TIMEOUT): a run due after that must still run once, so
Runway never parks a run in the broker (no Celery ETA): a retry delay and a deployment run's
scheduled time wait in the database, and a sweep or a dispatcher sends the run when it is due.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from orchestrator.deployments import services
from orchestrator.runs.models import FlowRun
from tests.deployments.conftest import wait_until
from tests.deployments.test_agents import command, finished, ledger_lines, queue_name
from tests.reliability import flows, ledger
from tests.reliability.faults import FlowInThread, assert_attempts_match_ledger, history

VISIBILITY = "3"  # seconds


def test_a_retry_due_after_the_visibility_timeout_runs_once(start_worker, ledger_group):
    workers = [start_worker(concurrency=1, RUNWAY_BROKER_VISIBILITY_TIMEOUT=VISIBILITY) for _ in range(2)]
    running = FlowInThread(flows.fails_then_waits, ledger_group, 8.0)
    assert running.join(timeout=90).result() == 2
    task_run = FlowRun.objects.get(task_runs__id=ledger.entries(ledger_group)[0].run_id).task_runs.get()
    waited = [s.timestamp for s in task_run.states.order_by("timestamp") if s.name in ("AwaitingRetry", "Retrying")]
    print(f"\n[fault 6] retry delay 8 s, visibility timeout {VISIBILITY} s: attempt 2 started "
          f"{(waited[1] - waited[0]).total_seconds():.1f} s after AwaitingRetry")  # fmt: skip
    assert history(task_run) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert_attempts_match_ledger(ledger_group, [task_run])
    assert any("waits 8 s in the database" in w.output() or "waits 7 s in the database" in w.output() for w in workers)


def test_a_deployment_run_scheduled_past_the_visibility_timeout_runs_once(agent_flow, start_worker):
    entrypoint, flow_name, ledger_path = agent_flow()
    queue = queue_name()
    command("work-queue", "create", queue)
    command("deployment", "create", entrypoint, "--name", "later", "--param", f"ledger={ledger_path}", "-q", queue)
    for _ in range(2):
        start_worker(queue, 1, RUNWAY_BROKER_VISIBILITY_TIMEOUT=VISIBILITY)
    due = timezone.now() + timezone.timedelta(seconds=8)
    run_id = services.deployment_run_create(ref=f"{flow_name}/later", scheduled_time=due).id
    run = wait_until(lambda: finished(run_id), 60, "the run ending")
    time.sleep(2 * float(VISIBILITY))  # a redelivered message would run it again now
    assert run.state_name == "Completed" and run.start_time >= due
    assert len(ledger_lines(ledger_path)) == 1


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbitmq_consumer_timeout(ms: int) -> None:
    subprocess.run(["rabbitmqctl", "eval", f"application:set_env(rabbit, consumer_timeout, {ms})."],
                   check=True, capture_output=True, timeout=60)  # fmt: skip


@pytest.fixture
def short_consumer_timeout():
    """RabbitMQ's consumer timeout at 5 s (its default is 30 minutes), restored afterwards. RabbitMQ
    looks for late acknowledgements about once a minute: the task run below lasts longer."""
    try:
        _rabbitmq_consumer_timeout(5000)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot set RabbitMQ's consumer timeout: {exc}")
    yield
    _rabbitmq_consumer_timeout(1800000)


def test_a_task_run_longer_than_rabbitmq_s_consumer_timeout_does_not_kill_the_worker(
        start_worker, ledger_group, short_consumer_timeout):  # fmt: skip
    worker = start_worker(concurrency=1, RUNWAY_BROKER_URL=RABBITMQ)
    code = f"from tests.reliability import flows\nprint(flows.sleepers({ledger_group!r}, [75.0, 0.1]))"
    flow = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], text=True,
                            env={**os.environ, "RUNWAY_BROKER_URL": RABBITMQ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        out, err = flow.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        flow.kill()
        out, err = flow.communicate()
        raise AssertionError(f"the flow hangs:\n{err[-4000:]}\nworker:\n{worker.output()[-3000:]}") from None
    print(f"\n[fault 6, RabbitMQ] flow exit {flow.returncode}; worker alive: {worker.process.poll() is None}; "
          f"executions {sorted(ledger.executions_by_run(ledger_group).values())}")  # fmt: skip
    assert flow.returncode == 0, err[-3000:]
    assert "Connection to broker lost" in worker.output()  # RabbitMQ did close the channel
    assert worker.process.poll() is None, worker.output()[-3000:]
    assert not ledger.doubled(ledger_group)
