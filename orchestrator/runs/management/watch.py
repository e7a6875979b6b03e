"""Following a flow run from a terminal: its new states and log lines as they are recorded."""
from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from orchestrator.runs.management.render import format_time, log_line
from orchestrator.runs.selectors import flow_run_get, flow_run_states, log_list
from orchestrator.schemas import TERMINAL_TYPES


def watch_flow_run(flow_run_id: UUID, *, write: Callable[[str], None], timeout: float | None = None,
                   poll_seconds: float = 0.5) -> str | None:  # fmt: skip
    """Write each new state and log line of the run until it ends; answer its final state type,
    or None if `timeout` seconds passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = _Seen()
    while True:
        ended = flow_run_get(flow_run_id=flow_run_id).state_type in {t.value for t in TERMINAL_TYPES}
        seen.write_new(flow_run_id, write)  # read after the check: an ended run's last lines are written too
        if ended:
            for _ in range(LATE_LINES_POLLS):  # the run's process stores its last log lines as it exits
                time.sleep(poll_seconds)
                if not seen.write_new(flow_run_id, write):
                    break
            return flow_run_get(flow_run_id=flow_run_id).state_type
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(poll_seconds)


LATE_LINES_POLLS = 4


class _Seen:
    """The states and log lines already written."""

    def __init__(self) -> None:
        self.states: set[UUID] = set()
        self.last_log = 0

    def write_new(self, flow_run_id: UUID, write: Callable[[str], None]) -> int:
        """Write what is new since the last call; answer how many lines."""
        count = 0
        for row in flow_run_states(flow_run_id=flow_run_id).exclude(pk__in=self.states):
            self.states.add(row.pk)
            message = f": {row.message}" if row.message else ""
            write(f"{format_time(row.timestamp, millis=True)}  state {row.name}{message}")
            count += 1
        for row in log_list(flow_run_id=flow_run_id).filter(id__gt=self.last_log).order_by("id"):
            self.last_log = row.id
            write(log_line(row))
            count += 1
        return count
