"""What the run commands print: summaries of flows, runs, states and log lines.

Each `*_summary` returns plain values (datetimes, seconds, None), so one dict
serves both `--json` and, after `format_time` / `format_duration`, the tables.
Times print in the project's TIME_ZONE (UTC unless configured).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from orchestrator.runs.models import Flow, FlowRun, FlowRunState, Log, RunBase, TaskRun
from orchestrator.schemas import StateType


def format_time(value: datetime | None, *, millis: bool = False) -> str | None:
    if value is None:
        return None
    local = timezone.localtime(value)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{local.microsecond // 1000:03d}" if millis else text


def format_duration(seconds: float | None) -> str | None:
    """0.017s, 12.3s, 5m 02s, 2h 03m: precise when short, readable when long."""
    if seconds is None:
        return None
    if seconds < 1:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def state_label(state_type: str | None, state_name: str | None) -> str | None:
    """'Completed', or 'AwaitingRetry (SCHEDULED)' when the name refines the type."""
    if state_type is None:
        return state_name
    if not state_name or state_name.upper() == state_type:
        return state_type.title()
    return f"{state_name} ({state_type})"


def run_duration(run: RunBase, *, now: datetime) -> float | None:
    """Seconds spent Running over all attempts, counting the current stretch of a run still Running.

    None for a run that never started, so a table shows '-' rather than 0.
    """
    if run.state_type == StateType.RUNNING and run.state_timestamp:
        return run.total_run_time + max((now - run.state_timestamp).total_seconds(), 0.0)
    return run.total_run_time if run.start_time else None


def flow_summary(flow: Flow) -> dict[str, Any]:
    """A flow from `flow_list_with_run_summary`, with its run count and newest run."""
    return {
        "id": flow.id, "name": flow.name, "run_count": flow.run_count,
        "last_run_time": flow.last_run_time, "last_run_state_type": flow.last_run_state_type,
        "last_run_state_name": flow.last_run_state_name,
    }  # fmt: skip


def flow_run_summary(run: FlowRun, *, now: datetime) -> dict[str, Any]:
    return {
        "id": run.id, "name": run.name, "flow": run.flow.name,
        "state_type": run.state_type, "state_name": run.state_name,
        "start_time": run.start_time, "expected_start_time": run.expected_start_time,
        "end_time": run.end_time, "duration": run_duration(run, now=now),
    }  # fmt: skip


def task_run_summary(run: TaskRun, *, now: datetime) -> dict[str, Any]:
    return {
        "id": run.id, "name": run.name, "task_key": run.task_key,
        "state_type": run.state_type, "state_name": run.state_name, "run_count": run.run_count,
        "start_time": run.start_time, "end_time": run.end_time, "duration": run_duration(run, now=now),
    }  # fmt: skip


def state_summary(row: FlowRunState) -> dict[str, Any]:
    return {"timestamp": row.timestamp, "type": row.type, "name": row.name, "message": row.message or None}


def flow_run_detail(run: FlowRun, *, now: datetime) -> dict[str, Any]:
    """Every field `flow-run inspect` shows, except the related lists it adds itself."""
    return {
        **flow_run_summary(run, now=now),
        "flow_id": run.flow_id, "parameters": run.parameters, "tags": run.tags,
        "run_count": run.run_count, "retries": run.empirical_policy.get("retries", 0),
        "parent_flow_run_id": run.parent_flow_run_id, "idempotency_key": run.idempotency_key,
        "state_timestamp": run.state_timestamp, "next_scheduled_start_time": run.next_scheduled_start_time,
        "total_run_time": run.total_run_time, "hostname": run.hostname or None, "pid": run.pid,
        "created": run.created,
    }  # fmt: skip


def log_line(row: Log) -> str:
    """`HH:MM:SS.mmm | LEVEL   | logger - message`, the layout the SDK prints while a run executes."""
    when = timezone.localtime(row.timestamp)
    level = logging.getLevelName(row.level)
    return f"{when:%H:%M:%S}.{when.microsecond // 1000:03d} | {level:<7} | {row.name} - {row.message}"
