"""The broker carries JSON only: a pickled message for a real Runway task, published with kombu straight
onto a worker's queue (Redis, then RabbitMQ), is refused by the worker, which says so, and neither the
pickle nor the task runs. The pickle, if loaded, would create a file; the task, if run, would claim a
task run. The same task sent as JSON right after is run (the worker serves that queue)."""
from __future__ import annotations

import os
import pathlib
import pickle
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from orchestrator.runs.models import TaskRun
from orchestrator.runs.services import (
    flow_get_or_create,
    flow_run_create,
    task_run_create,
)
from orchestrator.schemas import State, StateType
from tests.workers.test_rabbitmq import RABBITMQ

TASK = "runway.run_task_run"  # what a worker runs for a flow's task run: it first claims the run
BROKERS = {"redis": os.environ["RUNWAY_BROKER_URL"], "rabbitmq": RABBITMQ}


class CreatesAFile:
    """Unpickling this calls Path.touch(path): the proof that a message's pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def _pending_task_run() -> TaskRun:
    flow = flow_get_or_create(name=f"broker-{uuid.uuid4().hex[:6]}")
    run, _ = flow_run_create(flow_id=flow.id, name="r", state=State(StateType.RUNNING))
    task, _ = task_run_create(flow_run_id=run.id, task_key="broker.t", dynamic_key="0", name="t-0",
                              state=State(StateType.PENDING))  # fmt: skip
    return task


def _payload(task_run: TaskRun, marker: Path) -> bytes:
    """The pickled (args, kwargs, embed) of a task message, its body carrying the file-creating object."""
    return pickle.dumps(([{"task_run_id": str(task_run.id), "name": "t-0", "payload": CreatesAFile(marker)}], {}, {}))


def _publish(broker: str, queue: str, task_id: str, body: bytes, content_type: str, encoding: str) -> None:
    """A Celery (protocol 2) task message, written with kombu alone."""
    headers = {"lang": "py", "task": TASK, "id": task_id, "root_id": task_id, "parent_id": None, "group": None,
               "retries": 0, "eta": None, "expires": None, "timelimit": [None, None], "argsrepr": "", "kwargsrepr": ""}  # fmt: skip
    target = Queue(queue, Exchange(queue, type="direct"), routing_key=queue)
    with Connection(broker) as connection:
        connection.Producer().publish(body, exchange=target.exchange, routing_key=queue, declare=[target],
                                      headers=headers, content_type=content_type, content_encoding=encoding)  # fmt: skip


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.mark.parametrize("broker", list(BROKERS))
def test_a_pickled_message_is_refused_by_the_worker_and_nothing_of_it_runs(broker, start_worker, tmp_path):
    url = BROKERS[broker]
    queue = f"{os.environ['RUNWAY_DEFAULT_QUEUE']}-pickle-{broker}"
    worker = start_worker(queue, 1, RUNWAY_BROKER_URL=url)
    target, control = _pending_task_run(), _pending_task_run()
    marker = tmp_path / "unpickled"
    pickled = _payload(target, marker)

    pickled_id = str(uuid.uuid4())
    _publish(url, queue, pickled_id, pickled, "application/x-python-serialize", "binary")
    body = f'[[{{"task_run_id": "{control.id}", "name": "t-0"}}], {{}}, {{}}]'.encode()
    _publish(url, queue, str(uuid.uuid4()), body, "application/json", "utf-8")

    _wait(lambda: TaskRun.objects.get(pk=control.id).worker, 60, "the JSON message's task run being claimed")
    log = _wait(lambda: "Refusing to deserialize untrusted content of type pickle" in worker.output() and worker.output(),
                30, "the worker refusing the pickle")  # fmt: skip
    refusal = next(line for line in log.splitlines() if "Refusing to deserialize" in line)
    assert "application/x-python-serialize" in refusal
    print(f"{broker}: {refusal.strip()[:200]}")
    assert f"{TASK}[{pickled_id}] received" not in log  # never handed to the task
    assert not marker.exists()  # the pickle was never loaded
    assert TaskRun.objects.get(pk=target.id).worker == ""  # nor the task run: it was never claimed

    loaded_here = tmp_path / "unpickled-here"
    pickle.loads(_payload(target, loaded_here))
    assert loaded_here.exists()  # the same payload, loaded here, creates its file
