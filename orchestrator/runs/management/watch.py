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
    seen_states: set[UUID] = set()
    last_log = 0
    while True:
        for row in flow_run_states(flow_run_id=flow_run_id).exclude(pk__in=seen_states):
            seen_states.add(row.pk)
            message = f": {row.message}" if row.message else ""
            write(f"{format_time(row.timestamp, millis=True)}  state {row.name}{message}")
        for row in log_list(flow_run_id=flow_run_id).filter(id__gt=last_log).order_by("id"):
            last_log = row.id
            write(log_line(row))
        run = flow_run_get(flow_run_id=flow_run_id)
        if run.state_type in {t.value for t in TERMINAL_TYPES}:
            return run.state_type
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(poll_seconds)
