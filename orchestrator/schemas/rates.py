"""Rates as Celery writes them: "10/s", "100/m", "5/h" (a bare number is per second).

Shared by the SDK (checked when a task is defined) and the workers (the rate a Celery task name stands for)."""
from __future__ import annotations

import re

_RATE = re.compile(r"(?P<count>\d+(?:\.\d+)?)(?:/(?P<unit>[smh]))?")


def parse_rate(value: object) -> str:
    """The rate in its canonical form ("10/s"); ValueError naming the problem if it is not one."""
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    match = _RATE.fullmatch(text)
    if match is None or float(match["count"]) <= 0:
        raise ValueError(f"rate_limit {value!r} is not a rate: write a positive number of runs per "
                         "second, minute or hour, e.g. '10/s', '100/m' or '5/h'")  # fmt: skip
    return f"{match['count']}/{match['unit'] or 's'}"
