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


def assert_attempts_match_ledger(group: str, runs: Any) -> int:
    """Every attempt that ran is one the orchestrator recorded (1..run_count), none ran twice, and a
    Completed run's last attempt ran. An attempt missing from the ledger must have ended Crashed:
    a worker killed between the orchestrator's Running answer and the body's first line (a window
    of a few milliseconds, hit now and then by the soak's random kills) leaves a recorded attempt
    that never executed. Answers how many such attempts there were."""
    assert ledger.doubled(group) == []
    by_run: dict[str, set[int]] = {}
    for entry in ledger.entries(group):
        by_run.setdefault(entry.run_id, set()).add(entry.attempt)
    never_began = 0
    for run in runs:
        ran, recorded, states = by_run.get(str(run.id), set()), set(range(1, run.run_count + 1)), history(run)
        missing = recorded - ran
        why = (run.name, states, f"attempts recorded {sorted(recorded)}, ran {sorted(ran)}")
        assert ran <= recorded, why
        assert run.state_name != "Completed" or run.run_count in ran, why
        assert len(missing) <= states.count("Crashed"), why
        never_began += len(missing)
    return never_began
