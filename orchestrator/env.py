"""Reading `RUNWAY_*` environment variables: the one place configuration enters.

Django settings and the SDK settings both read through these helpers so that
every knob has one documented name (see docs/configuration.md).
"""
from __future__ import annotations

import os
from pathlib import Path

PREFIX = "RUNWAY_"


def env_str(name: str, default: str = "") -> str:
    """The value of RUNWAY_<name>, or `default` when unset or empty."""
    value = os.environ.get(PREFIX + name, "")
    return value if value != "" else default


def env_bool(name: str, default: bool = False) -> bool:
    """RUNWAY_<name> read as a boolean (1/true/yes/on, 0/false/no/off)."""
    raw = env_str(name).strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{PREFIX}{name}={raw!r} is not a boolean; use true or false")


def env_float(name: str, default: float) -> float:
    """RUNWAY_<name> read as a number of seconds or a count."""
    raw = env_str(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{PREFIX}{name}={raw!r} is not a number") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """RUNWAY_<name> read as a comma-separated list."""
    raw = env_str(name)
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else default


def runway_home() -> Path:
    """The directory holding the local database, results and code: RUNWAY_HOME or ~/.runway."""
    return Path(env_str("HOME", str(Path.home() / ".runway"))).expanduser().resolve()
