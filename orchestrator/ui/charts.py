"""Geometry for the UI's SVG charts: run history, a flow run's timeline, its task graph.

Computed here, drawn by templates as plain SVG (no JavaScript library): every
mark is a link with a text title, so the charts work with a keyboard and a
screen reader, and render the same in every browser.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HISTORY_WIDTH, HISTORY_HEIGHT = 900, 220
ROW_HEIGHT, LABEL_WIDTH, GANTT_WIDTH = 24, 220, 900
NODE_WIDTH, NODE_HEIGHT, COLUMN_GAP, ROW_GAP = 170, 28, 60, 14


@dataclass
class Mark:
    """One run drawn on a chart."""

    id: str
    label: str
    state_type: str
    title: str
    x: float
    y: float
    width: float = 0.0
    height: float = 0.0
    kind: str = "flow"  # what the mark links to: "flow" (a flow run's page) or "task"


def _started(run) -> datetime | None:
    return run.start_time or run.expected_start_time


def _duration(run, now: datetime) -> float:
    start = run.start_time
    if start is None:
        return 0.0
    return max(((run.end_time or now) - start).total_seconds(), 0.0)


def history(runs: Sequence, now: datetime, start: datetime | None = None) -> dict[str, Any]:
    """Each flow run a point: x its start, y its duration (square-root scale), coloured by state."""
    times = [_started(r) for r in runs if _started(r)]
    if not times:
        return {"marks": [], "width": HISTORY_WIDTH, "height": HISTORY_HEIGHT}
    first, last = start or min(times), max(max(times), now if start else max(times))
    span = max((last - first).total_seconds(), 1.0)
    longest = max([_duration(r, now) for r in runs] + [1.0])
    marks = []
    for run in runs:
        when = _started(run)
        if when is None:
            continue
        seconds = _duration(run, now)
        x = 10 + (when - first).total_seconds() / span * (HISTORY_WIDTH - 20)
        y = HISTORY_HEIGHT - 10 - math.sqrt(seconds / longest) * (HISTORY_HEIGHT - 20)
        title = f"{run.name}: {run.state_name or 'no state'}, {format_seconds(seconds)}, {when:%Y-%m-%d %H:%M:%S} UTC"
        marks.append(Mark(str(run.pk), run.name, run.state_type or "NONE", title, round(x, 1), round(y, 1)))
    return {"marks": marks, "width": HISTORY_WIDTH, "height": HISTORY_HEIGHT, "first": first, "last": last,
            "longest": format_seconds(longest)}  # fmt: skip


def timeline(runs: Sequence, now: datetime) -> dict[str, Any]:
    """A Gantt chart: one row per task run or subflow run, a bar from its start to its end (or now)."""
    starts = [_started(r) for r in runs if _started(r)]
    if not starts:
        return {"marks": [], "width": GANTT_WIDTH, "height": 0}
    first = min(starts)
    last = max([r.end_time or (now if r.start_time else _started(r)) for r in runs if _started(r)] + [first])
    span = max((last - first).total_seconds(), 0.001)
    scale = (GANTT_WIDTH - LABEL_WIDTH - 10) / span
    marks = []
    for row, run in enumerate(runs):
        when = _started(run)
        if when is None:
            continue
        end = run.end_time or (now if run.start_time else when)
        x = LABEL_WIDTH + (when - first).total_seconds() * scale
        width = max((end - when).total_seconds() * scale, 3.0)
        title = f"{run.name}: {run.state_name or 'no state'}, {format_seconds(_duration(run, now))}"
        marks.append(Mark(str(run.pk), run.name, run.state_type or "NONE", title, round(x, 1),
                          row * ROW_HEIGHT + 4, round(width, 1), ROW_HEIGHT - 8, getattr(run, "kind", "task")))  # fmt: skip
    return {"marks": marks, "width": GANTT_WIDTH, "height": len(runs) * ROW_HEIGHT, "span": format_seconds(span),
            "label_width": LABEL_WIDTH}  # fmt: skip


def graph(task_runs: Sequence) -> dict[str, Any]:
    """The task runs as the engine saw them feed each other (their `task_inputs`), in columns by depth."""
    by_id = {str(r.pk): r for r in task_runs}
    upstream = {pk: [u for u in _inputs(run.task_inputs) if u in by_id and u != pk] for pk, run in by_id.items()}
    depth: dict[str, int] = {}
    for pk in by_id:
        _depth(pk, upstream, depth)
    columns: dict[int, list[str]] = {}
    for pk in by_id:  # in the runs' order: creation order within a column
        columns.setdefault(depth[pk], []).append(pk)
    nodes: dict[str, Mark] = {}
    for column, members in columns.items():
        for row, pk in enumerate(members):
            run = by_id[pk]
            nodes[pk] = Mark(pk, run.name, run.state_type or "NONE", f"{run.name}: {run.state_name or 'no state'}",
                             10 + column * (NODE_WIDTH + COLUMN_GAP), 10 + row * (NODE_HEIGHT + ROW_GAP),
                             NODE_WIDTH, NODE_HEIGHT)  # fmt: skip
    edges = [
        {"x1": nodes[u].x + NODE_WIDTH, "y1": nodes[u].y + NODE_HEIGHT / 2, "x2": nodes[pk].x, "y2": nodes[pk].y + NODE_HEIGHT / 2,
         "title": f"{nodes[u].label} → {nodes[pk].label}"}
        for pk, ups in upstream.items() for u in ups
    ]  # fmt: skip
    width = 20 + (max(columns, default=0) + 1) * (NODE_WIDTH + COLUMN_GAP)
    height = 20 + max((len(m) for m in columns.values()), default=0) * (NODE_HEIGHT + ROW_GAP)
    return {"nodes": list(nodes.values()), "edges": edges, "width": width, "height": height}


def _inputs(task_inputs: dict[str, Any] | None) -> Iterable[str]:
    for refs in (task_inputs or {}).values():
        for ref in refs or []:
            if isinstance(ref, dict) and ref.get("input_type") == "task_run" and ref.get("id"):
                yield str(ref["id"])


def _depth(pk: str, upstream: dict[str, list[str]], depth: dict[str, int], seen: frozenset = frozenset()) -> int:
    """1 + the deepest upstream run's depth; a cycle (never written by the engine) counts as depth 0."""
    if pk in depth:
        return depth[pk]
    if pk in seen:
        return 0
    value = 1 + max((_depth(u, upstream, depth, seen | {pk}) for u in upstream[pk]), default=-1)
    depth[pk] = value
    return value


def format_seconds(seconds: float) -> str:
    """'850 ms', '12.3 s', '4 min 05 s', '2 h 03 min'."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
