"""Flows and tasks of the reliability suite: each execution is counted in the ledger first.

Importable by module path, so `celery worker` processes find the tasks; every task takes
the test's ledger group as its first argument.
"""
from __future__ import annotations

import time

from sdk import flow, task, unmapped
from sdk.context import TaskRunContext
from sdk.task_runners import CeleryTaskRunner
from tests.reliability.ledger import record

SLOT_TAG = "reliability-slot"  # tests put a concurrency limit on it


def _attempt() -> int:
    return TaskRunContext.get().task_run.run_count


@task(retries=1, retry_delay_seconds=0, tags=[SLOT_TAG])
def hangs_on_first_attempt(group: str, seconds: float = 120) -> int:
    """Sleeps through its first attempt (long enough to be killed or stopped in it); returns the attempt."""
    record(group)
    if _attempt() == 1:
        time.sleep(seconds)
    return _attempt()


@flow(task_runner=CeleryTaskRunner())
def one_hanging_task(group: str, seconds: float = 120) -> int:
    return hangs_on_first_attempt.submit(group, seconds).result()


@task(tags=[SLOT_TAG])
def hangs_without_retries(group: str) -> str:
    record(group)
    time.sleep(120)
    return "never"


@flow(task_runner=CeleryTaskRunner())
def one_hanging_task_without_retries(group: str) -> str:
    return hangs_without_retries.submit(group).result()


@task(retries=1, retry_delay_seconds=0)
def sleeps(group: str, i: int, seconds: float) -> int:
    """Sleeps `seconds` on its first attempt only (a retry after a lost worker is quick)."""
    record(group)
    if _attempt() == 1:
        time.sleep(seconds)
    return i


@flow(task_runner=CeleryTaskRunner())
def sleepers(group: str, seconds: list[float]) -> int:
    """One task run per entry of `seconds`, all submitted at once; the sum of their indexes."""
    return sum(f.result() for f in sleeps.map(unmapped(group), range(len(seconds)), seconds))


@flow(task_runner=CeleryTaskRunner())
def sleepers_behind(group: str, first: list[float], then: list[float]) -> int:
    """The runs of `first` are sent a second before those of `then`, so a worker with a slot for each
    of `first` starts exactly those (runs sent together reach the queue in any order)."""
    futures = [sleeps.submit(group, i, seconds) for i, seconds in enumerate(first)]
    time.sleep(1)
    futures += sleeps.map(unmapped(group), range(len(first), len(first) + len(then)), then)
    return sum(f.result() for f in futures)


@task(retries=1, retry_delay_seconds=0)
def counted(group: str, i: int) -> int:
    record(group)
    return i


@flow(task_runner=CeleryTaskRunner())
def counted_fan_out(group: str, n: int) -> int:
    return sum(f.result() for f in counted.map(unmapped(group), range(n)))


@task(retries=1, retry_delay_seconds=8)
def fails_first(group: str) -> int:
    record(group)
    if _attempt() == 1:
        raise RuntimeError("the first attempt fails")
    return _attempt()


@flow(task_runner=CeleryTaskRunner())
def fails_then_waits(group: str, delay: float) -> int:
    return fails_first.with_options(retry_delay_seconds=delay).submit(group).result()


@task(retries=3, retry_delay_seconds=0)
def soaked(group: str, i: int) -> int:
    record(group)
    time.sleep(0.01)
    return i


@flow(task_runner=CeleryTaskRunner())
def soak(group: str, n: int) -> int:
    return sum(f.result() for f in soaked.map(unmapped(group), range(n)))
