"""The shape every `python manage.py <noun> <verb>` command shares.

A noun is one management command (`flow`, `flow-run`, later `deployment`,
`work-queue`); its verbs are argparse subcommands. A subclass of NounCommand
writes `handle_<verb>(**options)` for each verb and, when the verb takes
arguments, `add_<verb>_arguments(parser)`. The base turns those into
subparsers, so `--help` works on the noun and on every verb, and uses the
handler's docstring as the verb's help text (its first line in the noun's
listing, all of it on the verb's own page).

Commands stay thin: they read through selectors and format what they get.
Errors the orchestrator raises on purpose become CommandError, so the user
sees one line naming the problem and a non-zero exit code, not a traceback.
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError

from orchestrator.exceptions import OrchestratorError
from orchestrator.schemas import StateType

LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
              "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}  # fmt: skip


class NounCommand(BaseCommand):
    """A management command whose first argument is a verb handled by `handle_<verb>`."""

    # These commands only read, and people run them often; Django's system checks
    # already run with migrate and runserver, so they are skipped here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
        for verb, handler in self.verbs().items():
            doc = inspect.getdoc(handler) or ""
            sub = verbs.add_parser(
                verb, help=doc.split("\n", 1)[0], description=doc,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )  # fmt: skip
            add_verb_arguments = getattr(self, f"add_{_identifier(verb)}_arguments", None)
            if add_verb_arguments is not None:
                add_verb_arguments(sub)

    @classmethod
    def verbs(cls) -> dict[str, Callable[..., None]]:
        """The verbs this noun answers to, from its `handle_<verb>` methods (`handle_set_state` is `set-state`)."""
        return {
            name.removeprefix("handle_").replace("_", "-"): getattr(cls, name)
            for name in sorted(dir(cls))
            if name.startswith("handle_") and callable(getattr(cls, name))
        }

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        handler = getattr(self, f"handle_{_identifier(verb)}")
        try:
            handler(**options)
        except OrchestratorError as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"could not read the Runway database: {exc}; if it is new, "
                "create its tables with `python manage.py migrate`"
            ) from exc

    def write_json(self, data: Any) -> None:
        """Machine-readable output: datetimes as ISO 8601, UUIDs as strings."""
        self.stdout.write(json.dumps(data, cls=DjangoJSONEncoder, indent=2))

    def write_table(self, headers: Sequence[str], rows: Iterable[Sequence[object]], *, indent: str = "") -> None:
        self.stdout.write(render_table(headers, rows, indent=indent))


def _identifier(verb: str) -> str:
    return verb.replace("-", "_")


def add_json_flag(parser: CommandParser) -> None:
    parser.add_argument("--json", action="store_true", dest="as_json", help="print JSON instead of a table")


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, indent: str = "") -> str:
    """Left-aligned columns two spaces apart; None prints as '-', a multi-line cell as its first line."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(
        (indent + "  ".join(text.ljust(width) for text, width in zip(line, widths))).rstrip() for line in lines
    )


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    text = str(value)
    first, _, rest = text.partition("\n")
    return f"{first} ..." if rest.strip() else first


def positive_int(text: str) -> int:
    """An argparse `type` for counts such as --limit."""
    return _whole_number(text, minimum=1)


def non_negative_int(text: str) -> int:
    """An argparse `type` for limits where 0 means none."""
    return _whole_number(text, minimum=0)


def non_negative_float(text: str) -> float:
    """An argparse `type` for durations in seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds of 0 or more, got {text!r}")
    return value


def _whole_number(text: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number of {minimum} or more, got {text!r}")
    return value


def show_value(value: Any) -> str:
    """A value on an `inspect` line: yes/no, lists comma-joined, '-' for nothing."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return "-" if value in (None, "") else str(value)


def parse_state_types(names: Iterable[str]) -> list[StateType]:
    """State types from names in any case, separate or comma-joined ('failed,CRASHED')."""
    found: list[StateType] = []
    for name in (part.strip() for text in names for part in text.split(",")):
        if not name:
            continue
        try:
            found.append(StateType(name.upper()))
        except ValueError:
            valid = ", ".join(t.value.lower() for t in StateType)
            raise CommandError(f"unknown state type {name!r}; use one of: {valid} (any case)") from None
    return found


def parse_log_level(text: str) -> int:
    """A log level from its name in any case (warning) or its number (30)."""
    if text.strip().isdigit():
        return int(text)
    try:
        return LOG_LEVELS[text.strip().upper()]
    except KeyError:
        valid = ", ".join(LOG_LEVELS)
        raise CommandError(f"unknown log level {text!r}; use one of: {valid}, or a number such as 20") from None
