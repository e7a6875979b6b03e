"""Run loggers: `get_run_logger()` inside flows and tasks, `disable_run_logger()` for tests.

Lines from run loggers go to the terminal and, tagged with their run, to the
orchestrator's Log table (see `sdk.logging.handlers`).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sdk.engine.timeouts import shielded
from sdk.exceptions import MissingContextError

_configured = False
_config_lock = threading.Lock()
_disabled: ContextVar[bool] = ContextVar("run_logger_disabled", default=False)
_ENGINE_FILE = "runway/engine"  # the pathname of the engine's own lines (see RunLoggerAdapter.engine_line)


def setup_logging() -> None:
    """Attach Runway's handlers to the `runway` logger tree, once per process."""
    global _configured
    if _configured:
        return
    with _config_lock:
        if _configured:
            return
        from sdk.logging.handlers import ConsoleHandler, OrchestratorHandler
        from sdk.settings import get_settings

        root = logging.getLogger("runway")
        root.setLevel(get_settings().logging_level)
        root.addHandler(ConsoleHandler())
        root.addHandler(OrchestratorHandler())
        root.propagate = False
        _configured = True


def get_logger(name: str = "runway") -> logging.Logger:
    """A Runway logger that is not tied to a run (its lines are not stored)."""
    setup_logging()
    return logging.getLogger(name if name.startswith("runway") else f"runway.{name}")


class RunLoggerAdapter(logging.LoggerAdapter):
    """Adds the run's ids and name to every record, merged with the call's own `extra`."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Logging takes locks: a timeout must not interrupt it half-way (see sdk.engine.timeouts)."""
        with shielded():
            super().log(level, msg, *args, **kwargs)

    def engine_line(self, level: int, msg: str) -> None:
        """A line the engine writes about the run ("Created task run ...", "Finished in state ...").

        Its record is made without `Logger.findCaller`, whose walk up the stack finds the
        calling function (always the engine, for these lines) and cost as much as the rest of
        the record: a task run on Celery writes three such lines.
        """
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        record = logger.makeRecord(logger.name, level, _ENGINE_FILE, 0, msg, (), None, "engine", self.extra)
        with shielded():
            logger.handle(record)


def get_run_logger(context: Any = None, **extra: Any) -> logging.LoggerAdapter:
    """The logger of the current task run, or else flow run; raises MissingContextError outside both."""
    from sdk.context import FlowRunContext, TaskRunContext

    if _disabled.get():
        return RunLoggerAdapter(logging.getLogger("runway.null"), {})
    context = context or TaskRunContext.get() or FlowRunContext.get()
    if isinstance(context, TaskRunContext):
        return task_run_logger(context, **extra)
    if isinstance(context, FlowRunContext):
        return flow_run_logger(context, **extra)
    raise MissingContextError("There is no active flow or task run context.")


def flow_run_logger(context: Any, **extra: Any) -> RunLoggerAdapter:
    setup_logging()
    run = context.flow_run
    fields = {"flow_run_id": run.id, "flow_run_name": run.name, "task_run_id": None, "task_run_name": None}
    return RunLoggerAdapter(logging.getLogger("runway.flow_runs"), {**fields, **extra})


def task_run_logger(context: Any, **extra: Any) -> RunLoggerAdapter:
    setup_logging()
    flow_ctx = context.flow_run_context
    fields = {
        "task_run_id": context.task_run.id,
        "task_run_name": context.task_run.name,
        "flow_run_id": flow_ctx.flow_run.id if flow_ctx else None,
        "flow_run_name": flow_ctx.flow_run.name if flow_ctx else None,
    }
    return RunLoggerAdapter(logging.getLogger("runway.task_runs"), {**fields, **extra})


@contextmanager
def disable_run_logger() -> Iterator[None]:
    """Make `get_run_logger()` return a silent logger, e.g. to unit-test `my_task.fn()`."""
    null = logging.getLogger("runway.null")
    null.disabled = True
    token = _disabled.set(True)
    try:
        yield
    finally:
        _disabled.reset(token)


__all__ = ["get_logger", "get_run_logger", "disable_run_logger", "setup_logging"]
