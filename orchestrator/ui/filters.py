"""The filter every run list shares: flow, deployment, state, tags and time range, kept in the URL.

`RunFilter.from_query` reads a page's query string and names what is wrong with
it; `apply` narrows flow runs or task runs (task runs by their flow run's flow
and deployment); `query` writes it back, so a filter is a link that can be saved.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from urllib.parse import urlencode
from uuid import UUID

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orchestrator.exceptions import InvalidInput
from orchestrator.runs.models import Flow, FlowRun, StateTypeChoices, TaskRun
from orchestrator.runs.selectors import with_all_tags

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
RANGE_LABELS = [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
                ("all", "All time"), ("custom", "Between…")]  # fmt: skip
STATE_TYPES = [value for value, _ in StateTypeChoices.choices]


@dataclass
class RunFilter:
    flows: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    flow_runs: list[str] = field(default_factory=list)  # task runs of these flow runs (the task runs list)
    range: str = "all"
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_query(cls, query: QueryDict, default_range: str = "all") -> RunFilter:
        """The filter a query string names; InvalidInput says which part is wrong."""
        states = [s.upper() for s in query.getlist("state") if s]
        unknown = [s for s in states if s not in STATE_TYPES]
        if unknown:
            raise InvalidInput(f"unknown state {unknown[0]!r}; choose from {', '.join(STATE_TYPES)}")
        deployments = [d for d in query.getlist("deployment") if d]
        flow_runs = [r for r in query.getlist("flow_run") if r]
        for ref in deployments:
            _uuid(ref, "deployment")
        for ref in flow_runs:
            _uuid(ref, "flow_run")
        chosen = query.get("range") or default_range
        if chosen not in dict(RANGE_LABELS):
            raise InvalidInput(f"unknown time range {chosen!r}; choose from {', '.join(dict(RANGE_LABELS))}")
        since, until = _time(query.get("since"), "since"), _time(query.get("until"), "until")
        if chosen == "custom" and since and until and since > until:
            raise InvalidInput("the time range ends before it starts: 'until' must be after 'since'")
        tags = [t.strip() for raw in query.getlist("tag") for t in raw.split(",") if t.strip()]
        return cls(flows=[f for f in query.getlist("flow") if f], deployments=deployments, states=states,
                   tags=tags, flow_runs=flow_runs, range=chosen, since=since, until=until)  # fmt: skip

    def window(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """The time range as (start, end), either open. "Last 24 hours" ends now: runs scheduled for
        later are upcoming, not recent (All time shows them)."""
        if self.range in RANGES:
            now = now or timezone.now()
            return now - RANGES[self.range], now
        if self.range == "custom":
            return self.since, self.until
        return None, None

    def apply(self, runs: QuerySet) -> QuerySet:
        """Flow runs or task runs matching every part of the filter."""
        if runs.model is TaskRun and (self.flows or self.deployments):
            # A task run's flow and deployment are its flow run's: the matching flow runs are
            # found first (by their indexes), then their task runs (by the flow run index).
            runs = runs.filter(flow_run_id__in=self._flow_runs(FlowRun.objects.all()).values("id"))
        elif runs.model is FlowRun:
            runs = self._flow_runs(runs)
        if runs.model is TaskRun and self.flow_runs:
            runs = runs.filter(flow_run_id__in=self.flow_runs)
        if self.states:
            runs = runs.filter(state_type__in=self.states)
        start, end = self.window()
        if start:
            runs = runs.filter(expected_start_time__gte=start)
        if end:
            runs = runs.filter(expected_start_time__lte=end)
        return with_all_tags(runs, self.tags)

    def _flow_runs(self, runs: QuerySet) -> QuerySet:
        """The flows' ids are read first and given as values: the planner then estimates how many runs
        they have from its statistics (a subquery let PostgreSQL walk a million task runs instead)."""
        if self.flows:
            runs = runs.filter(flow_id__in=list(Flow.objects.filter(name__in=self.flows).values_list("id", flat=True)))
        if self.deployments:
            runs = runs.filter(deployment_id__in=self.deployments)
        return runs

    def query(self, **extra: str) -> str:
        """The filter as a query string (with `extra` pairs), for links and saved views."""
        pairs = [("flow", f) for f in self.flows] + [("deployment", d) for d in self.deployments]
        pairs += [("flow_run", r) for r in self.flow_runs]
        pairs += [("state", s) for s in self.states] + [("tag", t) for t in self.tags]
        if self.range != "all":
            pairs.append(("range", self.range))
        if self.range == "custom":
            pairs += [(k, v.isoformat()) for k, v in (("since", self.since), ("until", self.until)) if v]
        pairs += [(k, v) for k, v in extra.items() if v]
        return urlencode(pairs)

    @property
    def is_empty(self) -> bool:
        return not (self.flows or self.deployments or self.flow_runs or self.states or self.tags or self.range != "all")


def _time(text: str | None, name: str) -> datetime | None:
    """A time from the query: ISO 8601, or the browser's datetime-local value (taken as UTC)."""
    if not text:
        return None
    try:
        value = parse_datetime(text.strip())
    except ValueError:
        value = None
    if value is None:
        raise InvalidInput(f"{name}={text!r} is not a date and time; use YYYY-MM-DDTHH:MM (UTC)")
    return value if timezone.is_aware(value) else timezone.make_aware(value, dt_timezone.utc)


def _uuid(text: str, name: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInput(f"{name}={text!r} is not an id; pick one from the list") from None
