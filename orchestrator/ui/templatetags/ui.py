"""Template helpers: a state shown by icon and words (never colour alone), durations, JSON."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html

from orchestrator.ui.charts import format_seconds

register = template.Library()

# One icon per state type; the state's name is always written beside it.
ICONS = {"COMPLETED": "✔", "FAILED": "✖", "CRASHED": "⚠", "RUNNING": "▶", "PENDING": "◌", "SCHEDULED": "◷",
         "CANCELLED": "⊘", "CANCELLING": "⊘", "PAUSED": "‖", "NONE": "·"}  # fmt: skip
LOG_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


@register.simple_tag
def state_badge(state_type: str | None, state_name: str | None) -> str:
    kind = state_type or "NONE"
    return format_html('<span class="state state-{}" data-state-type="{}"><span class="icon" aria-hidden="true">{}</span> '
                       '<span class="state-name">{}</span></span>', kind.lower(), kind, ICONS.get(kind, "·"),
                       state_name or "No state")  # fmt: skip


@register.filter
def state_icon(state_type: str | None) -> str:
    return ICONS.get(state_type or "NONE", "·")


@register.filter
def run_duration(run) -> str:
    """How long it ran (or has been running); '–' if it has not started."""
    if run.start_time is None:
        return "–"
    end = run.end_time or timezone.now()
    return format_seconds(max((end - run.start_time).total_seconds(), 0.0))


@register.filter
def seconds(value: float | None) -> str:
    return "–" if value is None else format_seconds(value)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def level_name(level: int) -> str:
    return LOG_LEVELS.get(level, str(level))


@register.filter
def utc(value: datetime | None) -> str:
    """Times are shown in UTC with seconds, the same in every browser (the live script matches it)."""
    if value is None:
        return "–"
    return timezone.localtime(value, timezone.get_fixed_timezone(0)).strftime("%Y-%m-%d %H:%M:%S")
