"""Tag concurrency limits in a local flow: the thread pool's runs wait for slots; a limit of 0 runs nothing."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.conf import settings

from orchestrator.limits.models import ConcurrencyLimit, ConcurrencySlot
from orchestrator.limits.services import concurrency_limit_create
from sdk import flow, tags, task
from tests.sdk.conftest import latest_flow_run


@pytest.fixture
def tag(monkeypatch):
    monkeypatch.setattr(settings, "RUNWAY_TASK_CONCURRENCY_WAIT_SECONDS", 0.05)
    name = f"local-{uuid.uuid4().hex[:6]}"
    yield name
    ConcurrencyLimit.objects.filter(tag=name).delete()


class Gauge:
    """Counts how many runs are inside at once."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def visit(self, seconds: float) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(seconds)
        with self.lock:
            self.now -= 1


def test_submitted_runs_with_a_limited_tag_never_run_more_than_the_limit_at_once(tag):
    concurrency_limit_create(tag=tag, limit=2)
    gauge = Gauge()

    @task
    def visit(i: int) -> int:
        gauge.visit(0.1)
        return i

    @flow
    def fan_out() -> list[int]:
        with tags(tag):
            return [f.result() for f in visit.map(range(8))]

    assert fan_out() == list(range(8))
    assert gauge.peak == 2
    assert not ConcurrencySlot.objects.filter(limit__tag=tag).exists()


def test_a_limit_of_zero_cancels_the_run_with_the_reason_instead_of_waiting(tag):
    concurrency_limit_create(tag=tag, limit=0)

    @task(tags=[tag])
    def never() -> str:
        return "ran"

    @flow
    def blocked() -> tuple[str, str]:
        state = never(return_state=True)
        return state.name, state.message

    name, message = blocked()

    assert name == "Cancelled"
    assert f"concurrency limit of tag {tag!r} is 0" in message
    assert latest_flow_run(blocked).task_runs.get().state_type == "CANCELLED"
