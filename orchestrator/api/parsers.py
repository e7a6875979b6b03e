"""The API's JSON parser: standard JSON, minus what the database cannot store.

PostgreSQL stores no NUL in text or JSONB, and a lone UTF-16 surrogate
("\\ud800", legal in JSON text) cannot be encoded as UTF-8 at all: either
would fail later, as a 500, or worse after the row was written, whenever the
row is read back. Both are refused here with a 400 naming where they were, as
is nesting deeper than any real payload needs.
"""
from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JSONWithoutNul(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels is not accepted") from None
        problem = _first_problem(data)
        if problem:
            raise ParseError(problem)
        return data


def _first_problem(data: Any) -> str | None:
    """What cannot be stored, and where: walked with a stack, so depth cannot exhaust Python's."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"JSON nested deeper than {MAX_DEPTH} levels is not accepted (at {path})"
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                return f"{_what(value)} is not accepted, found at {path or 'the top level'}"
        elif isinstance(value, dict):
            for key, item in value.items():
                here = f"{path}.{key}" if path else str(key)
                if _UNSTORABLE.search(str(key)):
                    return f"{_what(str(key))} is not accepted in a key, found at {path or 'the top level'}"
                stack.append((item, here, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i), depth + 1) for i, item in enumerate(value))
    return None


def _what(text: str) -> str:
    return "the NUL character (\\u0000)" if "\x00" in text else "a lone UTF-16 surrogate (\\ud800-\\udfff)"
