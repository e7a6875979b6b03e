"""A run's log lines for its page: a minimum level, a text search, and pages of lines in order."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.http import HttpRequest

from orchestrator.runs.models import Log

LOG_PAGE = 500
LEVELS = [(0, "All levels"), (10, "DEBUG and up"), (20, "INFO and up"), (30, "WARNING and up"), (40, "ERROR and up")]


@dataclass
class LogPage:
    lines: list[Log]
    level: int
    search: str
    older: int | None  # the id to read after for the next page, if there is more
    start: int  # the id this page was read after

    @property
    def last_id(self) -> int:
        return self.lines[-1].id if self.lines else self.start

    @property
    def levels(self) -> list[tuple[int, str]]:
        return LEVELS


def read(request: HttpRequest, *, flow_run_id: UUID | None = None, task_run_id: UUID | None = None) -> LogPage:
    """Lines of a flow run (with its task runs') or of one task run, in the order they were stored.

    Ids grow in the order lines are stored, and a run's lines are read in id order so that the
    page and the live view agree on what comes next."""
    level = _int(request.GET.get("level"), 0)
    search = (request.GET.get("q") or "").strip()[:200]
    start = _int(request.GET.get("log_after"), 0)
    lines = Log.objects.filter(flow_run_id=flow_run_id) if flow_run_id else Log.objects.filter(task_run_id=task_run_id)
    lines = lines.filter(level__gte=level, id__gt=start)
    if search:
        lines = lines.filter(message__icontains=search)
    found = list(lines.order_by("id")[: LOG_PAGE + 1])
    more = len(found) > LOG_PAGE
    found = found[:LOG_PAGE]
    return LogPage(found, level, search, found[-1].id if more else None, start)


def _int(text: str | None, default: int) -> int:
    try:
        return max(int(text), 0) if text else default
    except ValueError:
        return default
