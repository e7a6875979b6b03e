"""Query-string filters for the lists: by flow, state type and name, tags, time range, parent, host.

Multi-valued filters take a comma-separated list (`state_type=FAILED,CRASHED`).
An unknown value (a state type that does not exist, a malformed UUID or date)
is a 400 naming the parameter, never an empty list.
"""
from __future__ import annotations

from datetime import datetime, timezone

import django_filters as filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

from orchestrator.cli import LOG_LEVELS
from orchestrator.runs import selectors
from orchestrator.runs.models import FlowRun, Log, StateTypeChoices, TaskRun

LEVELS = LOG_LEVELS


class CharIn(filters.BaseInFilter, filters.CharFilter):
    pass


class UUIDIn(filters.BaseInFilter, filters.UUIDFilter):
    pass


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, turned to UTC: databases refuse some offsets Python accepts (PostgreSQL: beyond ±15:59)."""

    def to_python(self, value: str | None) -> datetime | None:
        parsed = super().to_python(value)
        try:
            return parsed.astimezone(timezone.utc) if parsed is not None and parsed.tzinfo else parsed
        except OverflowError:
            raise forms.ValidationError(f"{value!r} is out of the range of dates") from None


class UTCDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


def _after(field: str) -> filters.IsoDateTimeFilter:
    return UTCDateTimeFilter(field_name=field, lookup_expr="gte", help_text=f"{field} at or after (ISO 8601)")


def _before(field: str) -> filters.IsoDateTimeFilter:
    return UTCDateTimeFilter(field_name=field, lookup_expr="lt", help_text=f"{field} before (ISO 8601)")


class StrictOrdering(OrderingFilter):
    """`ordering=` with a field the list cannot sort by is a 400 listing those it can, not silently ignored."""

    def remove_invalid_fields(self, queryset: QuerySet, fields: list[str], view, request) -> list[str]:
        valid = super().remove_invalid_fields(queryset, fields, view, request)
        if len(valid) != len(fields):
            bad = next(f for f in fields if f not in valid)
            names = ", ".join(name for name, _ in self.get_valid_fields(queryset, view, {"request": request}))
            raise ValidationError({"ordering": [f"cannot order by {bad!r}; use one of {names} (prefix - for descending)"]})
        return valid


class _RunFilter(filters.FilterSet):
    state_type = CharIn(method="filter_state_type", help_text="State types, comma-separated, any case: FAILED,CRASHED")
    state_name = CharIn(field_name="state_name", help_text="State names, comma-separated: Late,AwaitingRetry")
    tags = CharIn(method="filter_tags", help_text="Runs carrying every one of these tags, comma-separated")
    expected_start_time_after = _after("expected_start_time")
    expected_start_time_before = _before("expected_start_time")
    start_time_after = _after("start_time")
    start_time_before = _before("start_time")
    hostname = filters.CharFilter()
    name = filters.CharFilter()
    name_contains = filters.CharFilter(field_name="name", lookup_expr="icontains")

    def filter_state_type(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        wanted = [v.strip().upper() for v in value if v.strip()]
        unknown = [v for v in wanted if v not in StateTypeChoices.values]
        if unknown:
            valid = ", ".join(StateTypeChoices.values)
            raise ValidationError({"state_type": [f"unknown state type {unknown[0]!r}; use one of {valid}"]})
        return queryset.filter(state_type__in=wanted)

    def filter_tags(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        return selectors.with_all_tags(queryset, value)


class FlowRunFilter(_RunFilter):
    flow = UUIDIn(field_name="flow_id", help_text="Flow ids, comma-separated")
    flow_name = CharIn(field_name="flow__name", help_text="Flow names, comma-separated")
    parent_flow_run = filters.UUIDFilter(field_name="parent_flow_run_id")
    top_level = filters.BooleanFilter(field_name="parent_flow_run", lookup_expr="isnull",
                                      help_text="true: only runs that are not subflows")  # fmt: skip

    class Meta:
        model = FlowRun
        fields: list[str] = []


class TaskRunFilter(_RunFilter):
    flow_run = UUIDIn(field_name="flow_run_id", help_text="Flow run ids, comma-separated")
    task_key = filters.CharFilter()
    cache_key = filters.CharFilter()

    class Meta:
        model = TaskRun
        fields: list[str] = []


class LogFilter(filters.FilterSet):
    flow_run = filters.UUIDFilter(field_name="flow_run_id", help_text="A flow run's lines (its task runs' included)")
    task_run = filters.UUIDFilter(field_name="task_run_id")
    min_level = filters.CharFilter(method="filter_min_level", help_text="Lowest level: a name (WARNING) or a number")
    timestamp_after = _after("timestamp")
    timestamp_before = _before("timestamp")
    search = filters.CharFilter(field_name="message", lookup_expr="icontains")

    class Meta:
        model = Log
        fields: list[str] = []

    def filter_min_level(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        text = value.strip().upper()
        level = int(text) if text.isdecimal() and text.isascii() else LEVELS.get(text)
        if level is None:
            raise ValidationError({"min_level": [f"unknown log level {value!r}; use one of {', '.join(LEVELS)} or a number"]})
        return queryset.filter(level__gte=level)
