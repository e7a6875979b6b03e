"""The API's JSON parser: standard JSON, minus the NUL character.

PostgreSQL stores no NUL in text or JSONB, so a "\\u0000" anywhere in a body
(a parameter, a log message, a state detail) would fail at the database as a
500. It is refused here with a 400 naming where it was.
"""
from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JSONWithoutNul(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        where = _nul_at(data, "")
        if where is not None:
            raise ParseError(f"the NUL character (\\u0000) is not accepted, found at {where or 'the top level'}")
        return data


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = _nul_at(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None
