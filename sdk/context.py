"""Run contexts: what code inside a flow or task run can ask about the run it is in.

Contexts live in context variables, so they follow a run into the threads its
task runner uses (submission copies the context) and into async code.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sdk.exceptions import MissingContextError

if TYPE_CHECKING:
    from sdk.client.base import OrchestrationClient
    from sdk.engine.cancellation import CancelScope
    from sdk.engine.flow_engine import FlowRunEngine
    from sdk.filesystems import LocalFileSystem
    from sdk.flows import Flow
    from sdk.futures import RunwayFuture
    from sdk.task_runners import BaseTaskRunner
    from sdk.tasks import Task


@dataclass
class RunInfo:
    """What the engine knows of a run it is orchestrating (read by sdk.runtime)."""

    id: UUID
    name: str
    run_count: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    scheduled_start_time: Any = None


@dataclass
class RunContext:
    client: OrchestrationClient
    log_prints: bool = False


@dataclass
class FlowRunContext(RunContext):
    """The flow run being executed: its flow, run, task runner and submitted futures."""

    flow: Flow | None = None
    flow_run: RunInfo | None = None
    task_runner: BaseTaskRunner | None = None
    result_storage: LocalFileSystem | None = None
    persist_result: bool | None = None
    futures: list[RunwayFuture] = field(default_factory=list)
    cancel_scope: CancelScope | None = None  # fires when the flow run is cancelled (sdk/engine/cancellation.py)
    engine: FlowRunEngine | None = None  # the engine running it: pausing changes its state
    _counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_dynamic_key(self, task_key: str) -> str:
        """0, 1, 2... per task within this flow run attempt: names runs and finds them again on retry."""
        with self._lock:
            count = self._counts.get(task_key, 0)
            self._counts[task_key] = count + 1
        return str(count)

    @classmethod
    def get(cls) -> FlowRunContext | None:
        return _flow_run.get()


@dataclass
class TaskRunContext(RunContext):
    """The task run being executed."""

    task: Task | None = None
    task_run: RunInfo | None = None
    flow_run_context: FlowRunContext | None = None

    @classmethod
    def get(cls) -> TaskRunContext | None:
        return _task_run.get()


_flow_run: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar("flow_run", default=None)
_task_run: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar("task_run", default=None)
_tags: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("tags", default=frozenset())


def get_run_context() -> FlowRunContext | TaskRunContext:
    """The innermost run context: the task run if in one, else the flow run."""
    ctx = _task_run.get() or _flow_run.get()
    if ctx is None:
        raise MissingContextError("No run context available. You are not in a flow or task run context.")
    return ctx


@contextmanager
def enter(ctx: RunContext) -> Iterator[None]:
    """Make `ctx` the current flow or task run context for the block."""
    var = _task_run if isinstance(ctx, TaskRunContext) else _flow_run
    token = var.set(ctx)
    outer_task = _task_run.set(None) if isinstance(ctx, FlowRunContext) else None
    try:
        yield
    finally:
        if outer_task is not None:
            _task_run.reset(outer_task)
        var.reset(token)


@contextmanager
def tags(*new_tags: str) -> Iterator[frozenset[str]]:
    """Add tags to every flow and task run created in the block: `with tags("etl", "nightly"):`."""
    current = _tags.get()
    token = _tags.set(current | frozenset(new_tags))
    try:
        yield _tags.get()
    finally:
        _tags.reset(token)


def current_tags() -> frozenset[str]:
    return _tags.get()
