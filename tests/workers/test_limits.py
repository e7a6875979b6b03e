"""Tag concurrency limits and rate limits with real workers: enforced across processes, slots freed by crashes."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.limits.models import ConcurrencyLimit, ConcurrencySlot
from orchestrator.limits.services import concurrency_limit_create
from orchestrator.runs.models import FlowRun
from tests.workers import flows
from tests.workers.test_lost_workers import run_in_thread, wait_for_lines

FAST_WAIT = {"RUNWAY_TASK_CONCURRENCY_WAIT_SECONDS": "0.3"}


@pytest.fixture
def limit():
    """limit(n): the tag of the test flows limited to n runs at once; removed afterwards."""
    yield lambda n: concurrency_limit_create(tag=flows.LIMITED_TAG, limit=n)
    ConcurrencyLimit.objects.filter(tag=flows.LIMITED_TAG).delete()


def intervals(ledger_dir: Path) -> list[tuple[float, float]]:
    return sorted(tuple(map(float, path.read_text().split())) for path in ledger_dir.iterdir())


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:  # at equal times an end (-1) sorts first: touching runs do not overlap
        running += change
        peak = max(peak, running)
    return peak


def test_a_tag_limit_holds_across_workers_and_every_run_completes(start_worker, tmp_path, limit):
    limit(2)
    start_worker(concurrency=2, **FAST_WAIT)
    start_worker(concurrency=2, **FAST_WAIT)  # four pool processes, two slots

    assert flows.limited_fan_out(str(tmp_path), 8, 0.4) == list(range(8))

    spans = intervals(tmp_path)
    assert len(spans) == 8
    assert most_at_once(spans) == 2
    assert not ConcurrencySlot.objects.filter(limit__tag=flows.LIMITED_TAG).exists()


def test_the_slot_of_a_run_whose_worker_was_killed_is_freed_for_the_run_waiting_on_it(start_worker, tmp_path, limit):
    limit(1)
    ledger, done_dir = tmp_path / "ledger", tmp_path / "done"
    done_dir.mkdir()
    doomed = start_worker(concurrency=2, **FAST_WAIT)
    outcome = run_in_thread(flows.slot_holder_then_waiter, str(ledger), str(done_dir))
    wait_for_lines(ledger, 1)
    time.sleep(1.0)  # the second run has been told to wait for the slot
    assert not list(done_dir.iterdir())

    doomed.kill()
    start_worker(concurrency=2, **FAST_WAIT)
    outcome["thread"].join(timeout=90)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"].result() == ("Crashed", "Completed")
    assert len(list(done_dir.iterdir())) == 1 and len(ledger.read_text().splitlines()) == 1
    assert not ConcurrencySlot.objects.filter(limit__tag=flows.LIMITED_TAG).exists()
    flow_run = FlowRun.objects.filter(flow__name="slot-holder-then-waiter").latest("created")
    assert "stopped sending heartbeats" in flow_run.task_runs.get(task_key__endswith="hold_a_slot_for_long").state.message


def test_a_rate_limit_paces_a_task_s_runs_on_a_worker(start_worker, tmp_path):
    start_worker(concurrency=4)

    assert flows.paced_fan_out(str(tmp_path), 8) == list(range(8))

    starts = sorted(float(path.read_text()) for path in tmp_path.iterdir())
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert starts[-1] - starts[0] >= 7 * 0.25 * 0.8, gaps  # 4/s: a run every 0.25 s, not 4 at once
    # Starts are read inside the task, after the run's claim and Running proposal: a run that pays
    # a cold pool process (first import, first connection) starts late and lands next to the run
    # released after it. Seen on a loaded machine, once per flow at most: one close pair is allowed,
    # the pacing shows in the span above and in every other gap.
    assert sorted(gaps)[1] >= 0.1, gaps
