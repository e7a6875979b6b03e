"""What changed since a page last looked, read from the database, for the live pages.

A page subscribes with what it shows: the run lists ({"page": "runs", "query":
its filter}) or one flow run ({"page": "flow_run", "id", "log_after", "query"}).
`changes` returns the rows whose state changed (rendered by the same templates
as the page, so the page swaps them in), and new log lines. It looks back
OVERLAP seconds each time, because a writer may commit a state stamped a moment
before an earlier look; `Seen` drops what was already sent. The websocket
consumer and the polling fallback both call it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.http import QueryDict
from django.template.loader import render_to_string
from django.utils import timezone

from orchestrator.exceptions import InvalidInput
from orchestrator.runs.models import FlowRun, Log, TaskRun
from orchestrator.ui.filters import RunFilter
from orchestrator.ui.templatetags.ui import state_badge

OVERLAP = timedelta(seconds=5)
MAX_ROWS = 200
MAX_LOGS = 500


@dataclass
class Seen:
    """What a page has been sent: run versions by id, the last log id, when it last looked."""

    since: datetime = field(default_factory=timezone.now)
    versions: dict[str, str] = field(default_factory=dict)
    log_after: int = 0

    def is_new(self, kind: str, run) -> bool:
        key, version = f"{kind}:{run.pk}", f"{run.state_timestamp}|{run.state_name}"
        if self.versions.get(key) == version:
            return False
        self.versions[key] = version
        return True


def subscription(data: dict[str, Any]) -> dict[str, Any]:
    """A page's subscription, checked: InvalidInput names what is wrong."""
    page = data.get("page")
    if page not in ("runs", "flow_run"):
        raise InvalidInput(f"unknown live page {page!r}; subscribe to 'runs' or 'flow_run'")
    sub = {"page": page, "query": QueryDict(str(data.get("query") or "")).copy()}
    RunFilter.from_query(sub["query"])  # the page's filter must be valid
    if page == "flow_run":
        try:
            sub["id"] = UUID(str(data.get("id")))
            sub["log_after"] = int(data.get("log_after") or 0)
        except (TypeError, ValueError):
            raise InvalidInput("a flow_run subscription needs the run's id and the last log id shown") from None
    return sub


def changes(sub: dict[str, Any], seen: Seen) -> dict[str, Any]:
    """Rows changed since `seen.since` (minus OVERLAP) and not yet sent; `seen` is updated."""
    now = timezone.now()
    since, seen.since = seen.since - OVERLAP, now
    if sub["page"] == "runs":
        return _run_list_changes(sub, seen, since)
    return _flow_run_changes(sub, seen, since)


def _run_list_changes(sub: dict[str, Any], seen: Seen, since: datetime) -> dict[str, Any]:
    runs = RunFilter.from_query(sub["query"]).apply(FlowRun.objects.select_related("flow", "deployment"))
    changed = runs.filter(state_timestamp__gte=since).order_by("state_timestamp")[:MAX_ROWS]
    rows = [_run_row(run, "ui/_flow_run_row.html") for run in changed if seen.is_new("flow", run)]
    return {"runs": rows} if rows else {}


def _flow_run_changes(sub: dict[str, Any], seen: Seen, since: datetime) -> dict[str, Any]:
    found: dict[str, Any] = {}
    run = FlowRun.objects.select_related("flow", "state").filter(pk=sub["id"]).first()
    if run is not None and run.state_timestamp and run.state_timestamp >= since and seen.is_new("flow", run):
        found["run"] = {"id": str(run.pk), "state": state_badge(run.state_type, run.state_name),
                        "state_type": run.state_type, "message": run.state.message if run.state else ""}  # fmt: skip
    task_runs = TaskRun.objects.filter(flow_run_id=sub["id"], state_timestamp__gte=since).order_by("state_timestamp")
    rows = [_run_row(t, "ui/_task_run_row.html") for t in task_runs[:MAX_ROWS] if seen.is_new("task", t)]
    if rows:
        found["task_runs"] = rows
    subflows = FlowRun.objects.filter(parent_flow_run_id=sub["id"], state_timestamp__gte=since)
    rows = [_run_row(f, "ui/_flow_run_row.html")
            for f in subflows.select_related("flow", "deployment")[:MAX_ROWS] if seen.is_new("flow", f)]  # fmt: skip
    if rows:
        found["subflows"] = rows
    logs = _new_logs(sub, seen)
    if logs:
        found["logs"] = logs
    return found


def _new_logs(sub: dict[str, Any], seen: Seen) -> list[str]:
    query = sub["query"]
    after = max(seen.log_after, sub["log_after"])
    lines = Log.objects.filter(flow_run_id=sub["id"], id__gt=after, level__gte=_int(query.get("level")))
    if query.get("q"):
        lines = lines.filter(message__icontains=query["q"][:200])
    lines = list(lines.order_by("id")[:MAX_LOGS])
    if lines:
        seen.log_after = lines[-1].id
    return [render_to_string("ui/_log_line.html", {"line": line}) for line in lines]


def _run_row(run, template: str) -> dict[str, str]:
    return {"id": str(run.pk), "html": render_to_string(template, {"run": run})}


def _int(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0
