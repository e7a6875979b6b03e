"""Cursor pagination on every list: stable under inserts, cheap at any depth (no OFFSET scans)."""
from __future__ import annotations

from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-created"


class StateCursor(Cursor):
    """A run's state history, oldest first."""

    ordering = "timestamp"
