"""logs_create: a batch of log lines, stored whole."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orchestrator.runs import services
from orchestrator.runs.models import Log
from orchestrator.schemas import StateType


def test_a_batch_larger_than_one_statement_carries_is_stored_whole_and_in_order(make_flow_run):
    """Rows go in multi-row statements of at most the driver's parameter limit: 6,000 lines of
    six columns take four statements (10,000 parameters each at most)."""
    flow_run = make_flow_run(StateType.PENDING, StateType.RUNNING)
    start = datetime(2026, 12, 3, tzinfo=timezone.utc)
    lines = [{"flow_run_id": flow_run.id, "level": 20, "name": "runway.flow_runs", "message": f"line {i}",
              "timestamp": start + timedelta(microseconds=i)} for i in range(6000)]  # fmt: skip

    assert services.logs_create(logs=lines) == 6000

    stored = list(Log.objects.filter(flow_run_id=flow_run.id).order_by("timestamp").values_list("message", flat=True))
    assert stored == [f"line {i}" for i in range(6000)]


def test_log_batch_keys_older_than_the_limit_are_forgotten_and_newer_ones_still_refuse_a_repeat(make_flow_run):
    from orchestrator.runs.models import LogBatch

    flow_run = make_flow_run(StateType.PENDING, StateType.RUNNING)
    line = {"flow_run_id": flow_run.id, "level": 20, "name": "runway", "message": "once",
            "timestamp": datetime.now(timezone.utc)}  # fmt: skip
    assert services.logs_create(logs=[line], batch_key="prune-old") == 1
    assert services.logs_create(logs=[line], batch_key="prune-new") == 1
    LogBatch.objects.filter(key="prune-old").update(created=datetime.now(timezone.utc) - timedelta(days=2))

    assert services.log_batches_prune(older_than=timedelta(days=1)) >= 1

    assert set(LogBatch.objects.filter(key__startswith="prune-").values_list("key", flat=True)) == {"prune-new"}
    assert services.logs_create(logs=[line], batch_key="prune-new") == 0  # still guarded
