"""The same flow with RabbitMQ as the broker: a worker and a flow process both on amqp://."""
from __future__ import annotations

import os

from tests.sdk.conftest import run_script

RABBITMQ = os.environ.get("RUNWAY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def test_a_flow_s_tasks_run_on_a_worker_over_rabbitmq(start_worker):
    worker = start_worker(concurrency=2, RUNWAY_BROKER_URL=RABBITMQ)

    done = run_script("from tests.workers import flows\nprint(flows.squares_then_total(6))",
                      timeout=120, RUNWAY_BROKER_URL=RABBITMQ)  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(sum(i * i for i in range(6)))
    assert "Connected to amqp://guest:**@127.0.0.1:5672//" in worker.output()
    assert worker.output().count("Task run 'square-") >= 6
