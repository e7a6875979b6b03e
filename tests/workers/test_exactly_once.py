"""Nothing lost, nothing doubled: many task runs over several workers (a broker restart mid-flow:
tests/reliability/test_broker_restart.py)."""
from __future__ import annotations

import os
from collections import Counter

import pytest

from orchestrator.runs.models import FlowRun
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
