"""Nothing lost, nothing doubled: many task runs over several workers, and a broker restart mid-flow."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.runs.models import FlowRun
from tests.conftest import free_port
from tests.sdk.conftest import run_script
from tests.workers import flows


@pytest.mark.slow
def test_two_thousand_task_runs_over_three_workers_each_complete_exactly_once(start_worker, tmp_path):
    for _ in range(3):
        start_worker(concurrency=1)
    n = 2000
    assert flows.many_side_effects(str(tmp_path), n) == n * (n - 1) // 2
    executions = Counter(int(name.split("-")[0]) for name in os.listdir(tmp_path))
    assert sorted(executions) == list(range(n)) and set(executions.values()) == {1}
    run = FlowRun.objects.filter(flow__name="many-side-effects").latest("created")
    assert run.state_name == "Completed"
    assert run.task_runs.count() == n and run.task_runs.filter(state_name="Completed").count() == n
    processes = {name.split("-")[1] for name in os.listdir(tmp_path)}
    assert len(processes) >= 3  # the work was spread over the workers


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to run a broker of its own")
def test_a_flow_completes_when_its_broker_restarts_in_the_middle(start_worker, tmp_path):
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def start_redis() -> subprocess.Popen:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return process

    redis = start_redis()
    try:
        worker = start_worker(concurrency=2, RUNWAY_BROKER_URL=broker)
        ledger = tmp_path / "ledger"
        ledger.mkdir()
        code = (
            "import sys\nsys.path.insert(0, '.')\n"
            "from sdk import flow, unmapped\nfrom sdk.task_runners import CeleryTaskRunner\n"
            "from tests.workers.flows import record\n"
            "@flow(task_runner=CeleryTaskRunner())\ndef through_a_restart(ledger, n):\n"
            "    return sum(f.result() for f in record.map(unmapped(ledger), range(n)))\n"
            f"print(through_a_restart({str(ledger)!r}, 300))"
        )
        flow = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                                env={**os.environ, "RUNWAY_BROKER_URL": broker},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while len(os.listdir(ledger)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        redis.kill()  # the broker goes away mid-flow, with its queued messages (it keeps nothing on disk)
        redis.wait()
        time.sleep(2)
        redis = start_redis()
        try:
            out, err = flow.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            flow.kill()
            out, err = flow.communicate()
            raise AssertionError(f"the flow hangs:\n{err[-4000:]}\nworker:\n{worker.output()[-4000:]}") from None
        assert flow.returncode == 0, err[-3000:]
        assert out.strip().splitlines()[-1] == str(sum(range(300)))
        executions = Counter(int(name.split("-")[0]) for name in os.listdir(ledger))
        assert sorted(executions) == list(range(300)) and max(executions.values()) == 1
    finally:
        redis.kill()
