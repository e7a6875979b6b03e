"""The words a rule is written in: the states it may watch, and the placeholders of its templates.

A state type (Failed) watches every state of that type, whatever its name
(Failed also fires on TimedOut; Scheduled on Late and AwaitingRetry); a named
state (Late) watches only states of that name. Names are read in any case.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from orchestrator.exceptions import InvalidInput
from orchestrator.schemas import StateType

TYPE_NAMES = {t.value.title(): t for t in StateType}  # "Failed" -> FAILED
NAMED_STATES = {  # the names Runway gives to states of these types
    "Late": StateType.SCHEDULED, "AwaitingRetry": StateType.SCHEDULED, "Retrying": StateType.RUNNING,
    "Cached": StateType.COMPLETED, "TimedOut": StateType.FAILED, "Suspended": StateType.PAUSED,
}  # fmt: skip
STATE_CHOICES = [*TYPE_NAMES, *NAMED_STATES]
_BY_LOWER = {name.lower(): name for name in STATE_CHOICES}

PLACEHOLDERS = {
    "flow_run_name": "the run's name (electronic-fulmar)",
    "flow_run_id": "the run's id",
    "flow_name": "its flow's name",
    "deployment": "flow/deployment, or empty",
    "tags": "its tags, comma-separated",
    "state_name": "the state it entered (Failed, Late)",
    "state_type": "that state's type (FAILED, SCHEDULED)",
    "state_message": "the state's message (the error of a failure)",
    "timestamp": "when it entered the state (ISO 8601, UTC)",
    "flow_run_url": "a link to the run's page (RUNWAY_UI_URL)",
    "rule_name": "this rule's name",
}
DEFAULT_TITLE = "Flow run {flow_run_name} of {flow_name}: {state_name}"
DEFAULT_BODY = "Flow run {flow_run_name} of flow {flow_name} entered {state_name} at {timestamp}.\n{state_message}\n{flow_run_url}"
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def state_names(names: Iterable[str]) -> list[str]:
    """The names as written in STATE_CHOICES, in order, without repeats; InvalidInput names an unknown one."""
    found: list[str] = []
    for raw in names:
        name = _BY_LOWER.get(str(raw).strip().lower())
        if name is None:
            raise InvalidInput(f"unknown state {raw!r} for a notification rule; use any of: {', '.join(STATE_CHOICES)}")
        if name not in found:
            found.append(name)
    if not found:
        raise InvalidInput(f"a notification rule needs at least one state to watch, e.g. Failed, Crashed, Late "
                           f"(any of: {', '.join(STATE_CHOICES)})")  # fmt: skip
    return found


def split_states(names: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(state type values watched whole, state names watched) for checked names."""
    types = frozenset(TYPE_NAMES[name].value for name in names if name in TYPE_NAMES)
    return types, frozenset(name for name in names if name in NAMED_STATES)


def check_template(text: str, label: str) -> str:
    """The template, if each {placeholder} is known and every other brace doubled ({{ and }})."""
    for match in _PLACEHOLDER.finditer(text):
        token, name = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            continue
        if name is None:
            raise InvalidInput(f"{label}: a lone {token!r} at character {match.start() + 1}; write {token * 2} for a brace")
        if name not in PLACEHOLDERS:
            raise InvalidInput(f"{label}: unknown placeholder {{{name}}}; use any of: "
                               + ", ".join(f"{{{known}}}" for known in PLACEHOLDERS))  # fmt: skip
    return text


def fill_template(text: str, values: dict[str, str]) -> str:
    """The template with its placeholders replaced (no attribute access, no format specs: only names)."""

    def replace(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            return token[0]
        return values.get(name or "", token)

    return _PLACEHOLDER.sub(replace, text)
