"""Helpers of the fault tests: run a flow in a thread, wait for ledger rows, read a run's history."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.reliability import ledger


class FlowInThread:
    """`fn(*args, return_state=True)` on a daemon thread: `.join()` answers its final state or raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.state: Any = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self.state = fn(*args, return_state=True)
        except BaseException as exc:  # noqa: BLE001 (reported to the test)
            self.error = exc
        self.ended_at = time.time()

    def join(self, timeout: float) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the flow still runs after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.state


def wait_for_executions(group: str, count: int, timeout: float = 60) -> list[ledger.Entry]:
    """Wait until `group` has at least `count` executions in the ledger; answer its entries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = ledger.entries(group)
        if sum(entry.executions for entry in entries) >= count:
            return entries
        time.sleep(0.05)
    raise AssertionError(f"ledger group {group} did not reach {count} executions within {timeout} s")


def history(run: Any) -> list[str]:
    """A flow or task run's state names, oldest first."""
    return list(run.states.order_by("timestamp").values_list("name", flat=True))


def assert_attempts_match_ledger(group: str, runs: Any) -> None:
    """Executions = runs + recorded retries: each attempt of each run ran once, and every attempt
    that ran is one the orchestrator recorded (the run's run_count)."""
    assert ledger.doubled(group) == []
    by_run: dict[str, set[int]] = {}
    for entry in ledger.entries(group):
        by_run.setdefault(entry.run_id, set()).add(entry.attempt)
    for run in runs:
        assert by_run.get(str(run.id), set()) == set(range(1, run.run_count + 1)), (run.name, history(run))
