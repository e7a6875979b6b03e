"""Real `celery worker` processes on this session's database and broker queue."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class CeleryProcess:
    """`celery -A workers <args>` in a session of its own, its output in a log file under RUNWAY_HOME;
    `stop()` asks it to stop and waits."""

    def __init__(self, log_name: str, args: list[str], **env: str) -> None:
        self.log_path = Path(os.environ["RUNWAY_HOME"]) / f"{log_name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        command = [sys.executable, "-m", "celery", "-A", "workers", *args]
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **env}, start_new_session=True)  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Worker(CeleryProcess):
    """`celery -A workers worker`; `kill()` sends SIGKILL, `stop()` a warm shutdown."""

    def __init__(self, queues: str, concurrency: int = 2, name: str | None = None, **env: str) -> None:
        self.name = name or f"w-{uuid.uuid4().hex[:6]}"
        super().__init__(f"worker-{self.name}", ["worker", "-Q", queues, "-c", str(concurrency), "-n", f"{self.name}@%h",
                                                 "--without-gossip", "--without-mingle", "-l", "info"], **env)  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            if " ready." in self.output():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready within {timeout} s:\n{self.output()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the whole worker (main process and pool children), as when its machine is lost."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_worker(monkeypatch):
    """start_worker(queues=this test's queue, concurrency=2, **env) -> a ready Worker; stopped after the test.

    Each test sends to a queue of its own (in this process and in the processes it
    starts), so that messages one test leaves behind never reach the next one's workers.
    """
    from workers.celery import app

    queue = f"{os.environ['RUNWAY_DEFAULT_QUEUE']}-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("RUNWAY_DEFAULT_QUEUE", queue)
    monkeypatch.setitem(app.conf, "task_default_queue", queue)
    # With the CELERY namespace, Celery 5.6 reads the prefixed name first (Django's setting).
    monkeypatch.setitem(app.conf, "CELERY_TASK_DEFAULT_QUEUE", queue)
    started: list[Worker] = []

    def start(queues: str | None = None, concurrency: int = 2, **env: str) -> Worker:
        worker = Worker(queues or os.environ["RUNWAY_DEFAULT_QUEUE"], concurrency, **env)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()
