"""Flows and tasks the worker tests send to Celery: importable, so workers find them by module path."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from sdk import flow, get_run_logger, task, unmapped
from sdk.task_runners import CeleryTaskRunner


@task
def square(x: int) -> int:
    get_run_logger().info("squaring %d on pid %d", x, os.getpid())
    return x * x


@task
async def async_total(values: list[int]) -> int:
    await asyncio.sleep(0.01)
    return sum(values)


@flow(task_runner=CeleryTaskRunner())
def squares_then_total(n: int) -> int:
    return async_total.submit(square.map(range(n))).result()


@task(task_run_name="cube-of-{x}")
def cube(x: int) -> int:
    return x**3


@flow(task_runner=CeleryTaskRunner())
def cubes_of_squares() -> list[int]:
    return [future.result() for future in cube.map(square.map([2, 3]))]


@task(retries=2, retry_delay_seconds=2)
def fails_until_marked(marker: str) -> str:
    """Fails the first time (and leaves a marker), then succeeds: a retry by the orchestrator's rules."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return "second attempt"


@flow(task_runner=CeleryTaskRunner())
def retried_on_a_worker(marker: str) -> str:
    return fails_until_marked.submit(marker).result()


@task
def always_fails() -> None:
    raise ValueError("this task always fails")


@task
def after_failure(value: object) -> str:
    return "must not run"


@flow(task_runner=CeleryTaskRunner())
def upstream_failure() -> str:
    first = always_fails.submit()
    return after_failure.submit(first, return_state=True).name


@flow(task_runner=CeleryTaskRunner())
def reads_a_failure() -> None:
    always_fails.submit().result()  # raises the task's ValueError here, in the flow


class Point:
    """Not JSON: crosses to the worker through result storage."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


@task
def make_point(x: int) -> Point:
    return Point(x, x + 1)


@task
def norm(point: Point) -> int:
    return point.x * point.x + point.y * point.y


@flow(task_runner=CeleryTaskRunner())
def objects_between_tasks() -> int:
    return norm.submit(make_point.submit(3)).result()


OTHER_QUEUE = os.environ.get("RUNWAY_DEFAULT_QUEUE", "runway") + "-other"


@task(queue=OTHER_QUEUE)
def on_its_own_queue() -> str:
    return "served"


@flow(task_runner=CeleryTaskRunner())
def task_with_queue() -> str:
    return on_its_own_queue.submit().result()


def _attempt(ledger: str) -> int:
    """Append this execution to the ledger file; returns which execution this is (1, 2, ...)."""
    with open(ledger, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    return len(Path(ledger).read_text().splitlines())


@task(retries=1, retry_delay_seconds=0)
def slow_first_time(ledger: str) -> str:
    if _attempt(ledger) == 1:
        time.sleep(60)  # long enough to be killed in the middle
    return "done"


@flow(task_runner=CeleryTaskRunner())
def survives_a_lost_worker(ledger: str) -> str:
    return slow_first_time.submit(ledger).result()


@task
def slow_without_retries(ledger: str) -> str:
    _attempt(ledger)
    time.sleep(60)
    return "never"


@flow(task_runner=CeleryTaskRunner())
def loses_its_worker(ledger: str) -> str:
    return slow_without_retries.submit(ledger).result()


@task
def record(ledger_dir: str, i: int) -> int:
    """One side effect per execution: a file named after the item and the process that ran it."""
    Path(ledger_dir, f"{i}-{os.getpid()}-{time.monotonic_ns()}").touch()
    return i


@flow(task_runner=CeleryTaskRunner())
def many_side_effects(ledger_dir: str, n: int) -> int:
    return sum(f.result() for f in record.map(unmapped(ledger_dir), range(n)))


LIMITED_TAG = "workers-test-limited"


@task(tags=[LIMITED_TAG])
def hold_a_slot(ledger_dir: str, i: int, seconds: float) -> int:
    """Records when it ran (start and end, wall clock) so the test can count runs that overlapped."""
    start = time.time()
    time.sleep(seconds)
    Path(ledger_dir, f"{i}-{os.getpid()}").write_text(f"{start} {time.time()}")
    return i


@flow(task_runner=CeleryTaskRunner())
def limited_fan_out(ledger_dir: str, n: int, seconds: float) -> list[int]:
    return [f.result() for f in hold_a_slot.map(unmapped(ledger_dir), range(n), unmapped(seconds))]


@task(tags=[LIMITED_TAG])
def hold_a_slot_for_long(ledger: str) -> str:
    _attempt(ledger)
    time.sleep(60)
    return "never"


@flow(task_runner=CeleryTaskRunner())
def slot_holder_then_waiter(ledger: str, ledger_dir: str):
    """The second run is sent once the first is running, so it must wait for the slot the first holds."""
    long = hold_a_slot_for_long.submit(ledger)
    while not Path(ledger).exists():
        time.sleep(0.05)
    waiting = hold_a_slot.submit(ledger_dir, 0, 0.0)
    return long.wait().name, waiting.wait().name


@task(rate_limit="4/s")
def paced(ledger_dir: str, i: int) -> int:
    Path(ledger_dir, f"{i}-{os.getpid()}").write_text(str(time.time()))
    return i


@flow(task_runner=CeleryTaskRunner())
def paced_fan_out(ledger_dir: str, n: int) -> list[int]:
    return [f.result() for f in paced.map(unmapped(ledger_dir), range(n))]


@task(retries=1, retry_delay_seconds=0)
def slow_first_attempt(ledger: str) -> int:
    """The first attempt takes 4 s (long enough to be stopped in the middle); returns which attempt ran."""
    attempt = _attempt(ledger)
    if attempt == 1:
        time.sleep(4)
    return attempt


@flow(task_runner=CeleryTaskRunner())
def outlives_a_stopped_worker(ledger: str) -> int:
    return slow_first_attempt.submit(ledger).result()


@flow(task_runner=CeleryTaskRunner())
def one_square(x: int) -> int:
    return square.submit(x).result()


@task
def write_after(ledger: str, name: str, seconds: float) -> str:
    """Writes `name` to the ledger after `seconds` (in short sleeps), unless stopped first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    with open(ledger, "a") as out:
        out.write(f"{name}\n")
    return name


@flow(task_runner=CeleryTaskRunner())
def long_fan_out(ledger: str) -> list[str]:
    """One long task run on a worker, five more waiting for it: what a cancellation must stop."""
    first = write_after.submit(ledger, "first", 30)
    rest = [write_after.submit(ledger, f"next-{i}", 0, wait_for=[first]) for i in range(5)]
    return [future.result() for future in [first, *rest]]


@flow(task_runner=CeleryTaskRunner())
def waiting_runs_and_an_independent_one(ledger: str) -> list[str]:
    """Ten runs waiting for a slow one, then one that waits for nothing: it must not wait behind them."""
    first = write_after.submit(ledger, "first", 4)
    waiting = [write_after.submit(ledger, f"after-{i}", 0, wait_for=[first]) for i in range(10)]
    independent = write_after.submit(ledger, "independent", 0)
    return [future.result() for future in [first, *waiting, independent]]


def _note_in_ledger(task_, run, state) -> None:
    """A task hook: runs in the worker process that ran the task run."""
    with open(run.parameters["ledger"], "a") as out:
        out.write(f"{state.name} {run.name} {os.getpid()}\n")


@task(on_completion=[_note_in_ledger], on_failure=[_note_in_ledger])
def hooked(ledger: str, fail: bool) -> str:
    if fail:
        raise ValueError("asked to fail")
    return "ok"


@flow(task_runner=CeleryTaskRunner())
def hooked_on_workers(ledger: str) -> None:
    hooked.submit(ledger, False).wait()
    hooked.submit(ledger, True).wait()
