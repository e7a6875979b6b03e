"""Cursor pagination on every list: stable under inserts, cheap at any depth (no OFFSET scans)."""
from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-created"

    def decode_cursor(self, request):
        """A cursor that does not decode is bad input (400), not a missing page."""
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": ["invalid cursor; follow the `next` or `previous` link of a page"]}) from None


class StateCursor(Cursor):
    """A run's state history, oldest first."""

    ordering = "timestamp"
