"""Check 16: 4 agents on one work queue with 1,000 due deployment runs claim each run exactly once.

Four OS processes (tests/reliability/claim_agent.py) loop over the functions an agent
uses to find and take work (`release_due_runs`, `flow_run_claim`), also trying the runs
the others released, as a broker redelivering messages would make them, until the
queue is empty. They do not run the flows (1,000 flow processes on a 2-core machine
would measure process start-up); a claimed run is proposed Running then Completed as
its process would. Each process records every release and claim answer.

Checked: every run released once and claimed once (all processes together), no
process saw an error (deadlock, serialization failure, "database is locked"), and
every run's history is Scheduled, Pending, Running, Completed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.utils import timezone

from orchestrator.deployments.services import (
    deployment_create,
    deployment_run_create,
    work_queue_create,
)
from orchestrator.runs.models import FlowRun, FlowRunState
from tests.conftest import REPO_ROOT

RUNS, AGENTS = 1000, 4


def test_4_agents_claim_each_of_1000_due_runs_exactly_once(tmp_path, capsys):
    queue = work_queue_create(name=f"claims-{uuid.uuid4().hex[:8]}").name
    deployment, _ = deployment_create(flow_name=f"claims-{uuid.uuid4().hex[:8]}", name="d", entrypoint="f.py:f",
                                      code_path="/nowhere", code_version="0" * 64, work_queue_name=queue)  # fmt: skip
    due = timezone.now() - timedelta(seconds=1)
    run_ids = {str(deployment_run_create(ref=str(deployment.id), scheduled_time=due).id) for _ in range(RUNS)}
    # A generous heartbeat timeout: no claim may be taken over from a holder presumed dead here.
    env = {**os.environ, "RUNWAY_HEARTBEAT_TIMEOUT": "600"}
    names = [f"agent-{i}" for i in range(AGENTS)]
    agents = [subprocess.Popen([sys.executable, "-m", "tests.reliability.claim_agent", queue, name, str(tmp_path)],
                               cwd=REPO_ROOT, env=env) for name in names]  # fmt: skip
    try:
        _wait(lambda: all((tmp_path / f"{name}.ready").exists() for name in names) or any(a.poll() is not None for a in agents), 120)
        started = time.monotonic()
        (tmp_path / "go").touch()
        codes = [agent.wait(timeout=900) for agent in agents]
        seconds = time.monotonic() - started
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()

    errors = {name: (tmp_path / f"{name}.error").read_text() for name in names if (tmp_path / f"{name}.error").exists()}
    assert not errors and codes == [0] * AGENTS, (codes, errors)
    lines = [line for name in names for line in _lines(tmp_path, name)]
    released = Counter(line["released"] for line in lines if "released" in line)
    claimed = Counter(line["run"] for line in lines if line.get("claim") == "claimed")
    answers = Counter(line["claim"] for line in lines if "claim" in line)
    assert set(released) == run_ids and set(released.values()) == {1}, released.most_common(3)
    assert set(claimed) == run_ids and set(claimed.values()) == {1}, claimed.most_common(3)
    by_agent = Counter(name for name in names for line in _lines(tmp_path, name) if line.get("claim") == "claimed")
    histories = defaultdict(list)
    states = FlowRunState.objects.filter(flow_run__work_queue_name=queue).order_by("timestamp")
    for run_id, state_name in states.values_list("flow_run_id", "name"):
        histories[run_id].append(state_name)
    assert Counter(map(tuple, histories.values())) == {("Scheduled", "Pending", "Running", "Completed"): RUNS}
    assert FlowRun.objects.filter(work_queue_name=queue, state_type="COMPLETED").count() == RUNS
    with capsys.disabled():
        print(f"\ncheck 16 ({connection.vendor}): {RUNS} runs, {AGENTS} processes, {sum(claimed.values())} claims "
              f"(by agent: {sorted(by_agent.values())}), claim answers {dict(answers)}, 0 errors, {seconds:.1f} s")


def _lines(workdir: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (workdir / f"{name}.jsonl").read_text().splitlines()]


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the agents did not start"
        time.sleep(0.05)
