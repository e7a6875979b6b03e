"""State-change hooks: `on_completion`, `on_failure`, `on_cancellation`, `on_crashed`.

Each hook is called once with (flow or task, run, state). A failing hook is
logged and never changes the run's outcome.
"""
from __future__ import annotations

import logging
from typing import Any

from sdk.states import State


def run_hooks(owner: Any, run: Any, state: State, logger: logging.LoggerAdapter) -> None:
    for hook in _hooks_for(owner, state):
        name = getattr(hook, "__name__", repr(hook))
        try:
            logger.info(f"Running hook {name!r} in response to entering state {state.name!r}")
            hook(owner, run, state)
        except Exception:
            logger.exception(f"An error was encountered while running hook {name!r}")


def _hooks_for(owner: Any, state: State) -> list[Any]:
    if state.is_completed():
        return list(getattr(owner, "on_completion", None) or [])
    if state.is_failed():
        return list(getattr(owner, "on_failure", None) or [])
    if state.is_cancelled():
        return list(getattr(owner, "on_cancellation", None) or [])
    if state.is_crashed():
        return list(getattr(owner, "on_crashed", None) or [])
    return []
