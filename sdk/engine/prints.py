"""`log_prints=True`: `print()` inside such a run becomes an INFO line of the run's logger.

`builtins.print` is replaced once, by a function that checks the current run
context: outside runs with log_prints, and for prints to other files, it is
the ordinary print.
"""
from __future__ import annotations

import builtins
import sys
import threading
from typing import Any

_original_print = builtins.print
_installed = False
_lock = threading.Lock()


def install_if_needed(context: Any) -> None:
    global _installed
    if _installed or context is None or not context.log_prints:
        return
    with _lock:
        if not _installed:
            builtins.print = _print
            _installed = True


def _print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    from sdk.context import FlowRunContext, TaskRunContext

    context = TaskRunContext.get() or FlowRunContext.get()
    if context is None or not context.log_prints or file not in (None, sys.stdout, sys.stderr):
        _original_print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    from sdk.logging import get_run_logger

    get_run_logger(context).info((sep if sep is not None else " ").join(str(a) for a in args))
