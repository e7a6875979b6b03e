"""Keyset pages over (expected start, id), newest first: a page costs the same at row 50 or 5,000,000.

A cursor is the (time, id) of the row a page starts after, base64 in the URL;
`before` pages towards newer rows.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Q, QuerySet

from orchestrator.exceptions import InvalidInput

PAGE_SIZE = 50


@dataclass
class Page:
    rows: list
    older: str | None  # cursor of the next page (older rows), if any
    newer: str | None  # cursor of the previous page (newer rows), if any


def encode(when: datetime, pk: UUID) -> str:
    text = f"{when.isoformat()}|{pk}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, pk = text.split("|")
        return datetime.fromisoformat(when), UUID(pk)
    except (ValueError, UnicodeDecodeError, TypeError):
        raise InvalidInput(f"page cursor {cursor!r} is not valid; open the list again from its first page") from None


def paginate(rows: QuerySet, *, after: str | None = None, before: str | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of `rows` (any filter applied) after or before a cursor. Every run has an expected
    start from its first state on; one without (none is written so) is not listed."""
    rows = rows.filter(expected_start_time__isnull=False)
    if before:
        when, pk = decode(before)
        newer = Q(expected_start_time__gt=when) | Q(expected_start_time=when, id__gt=pk)
        found = list(rows.filter(newer).order_by("expected_start_time", "id")[: size + 1])
        more_newer = len(found) > size
        found = found[:size][::-1]
        if not found:
            return Page([], None, None)
        return Page(found, _cursor(found[-1]), _cursor(found[0]) if more_newer else None)
    if after:
        when, pk = decode(after)
        rows = rows.filter(Q(expected_start_time__lt=when) | Q(expected_start_time=when, id__lt=pk))
    found = list(rows.order_by("-expected_start_time", "-id")[: size + 1])
    more_older = len(found) > size
    found = found[:size]
    newer = _cursor(found[0]) if after and found else None
    return Page(found, _cursor(found[-1]) if more_older else None, newer)


def _cursor(row) -> str:
    return encode(row.expected_start_time, row.pk)
