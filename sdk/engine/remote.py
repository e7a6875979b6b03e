"""Task runs executed by another process (a Celery worker): the message, and running it there.

The flow's process creates the run Pending, waits for its upstream futures, and
sends a message that names the task's code (`module:name` or `file.py:name`),
the run's id, and its parameters as result references: plain JSON inline,
anything else written to result storage, which flow and workers share. The
worker loads the code, attaches an engine to the existing run and orchestrates
it as usual (Running, the call, Completed or Failed); the flow's future learns
the final state from the orchestrator, and the value from result storage.
"""
from __future__ import annotations

import copy
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sdk.client.base import OrchestrationClient
from sdk.context import FlowRunContext, RunInfo, TaskRunContext
from sdk.engine.driver import Deferred, run_sync
from sdk.filesystems import LocalFileSystem
from sdk.results import load_value, persist_value

if TYPE_CHECKING:
    from sdk.engine.task_engine import TaskRunEngine
    from sdk.tasks import Task

LONGEST_SLEEP_IN_WORKER = 1.0  # seconds a worker waits in place; longer retry delays send the task again


class NotSendable(TypeError):
    """Raised when a task cannot be run by another process: its code cannot be found by import."""


class NotClaimed(Exception):
    """Raised when a worker may not run the task run: another live worker holds it, or it is finished
    (a message delivered twice). Nothing was recorded: the message is dropped."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


def task_reference(task: Task) -> str:
    """Where a worker finds `task`: 'package.module:name', or 'path/to/script.py:name' for a script's tasks."""
    fn, qualname = task.fn, task.fn.__qualname__
    if "<locals>" in qualname:
        raise NotSendable(f"task {task.name!r} is defined inside a function; a worker can only import "
                          "tasks defined at the top level of a module or script")  # fmt: skip
    attribute = _attribute_name(task, sys.modules.get(fn.__module__))
    if fn.__module__ != "__main__":
        return f"{fn.__module__}:{attribute}"
    main_file = getattr(sys.modules["__main__"], "__file__", None)
    if not main_file:
        raise NotSendable(f"task {task.name!r} was defined interactively; put it in a file a worker can import")
    return f"{_absolute(main_file)}:{attribute}"


@lru_cache(maxsize=8)
def _absolute(path: str) -> Path:
    """The script's absolute path, resolved once: a `.map()` asks for it once per message (system calls)."""
    return Path(path).resolve()


def _attribute_name(task: Task, module: Any) -> str:
    """The module attribute holding the task (usually the function's own name)."""
    name = task.fn.__qualname__
    if module is not None and getattr(module, name, None) is not task:
        for attribute, value in vars(module).items():
            if value is task:
                return attribute
    return name


def message(engine: TaskRunEngine, parameters: dict[str, Any], storage: LocalFileSystem | None) -> dict[str, Any]:
    """The JSON body of the Celery message that runs `engine`'s task run elsewhere."""
    flow_ctx = engine.flow_ctx
    return {
        "task_run_id": str(engine.run.id),
        "task": task_reference(engine.task),
        "task_key": engine.task.task_key,
        "name": engine.run.name,
        "dynamic_key": engine.dynamic_key,
        "tags": list(engine.run.tags),
        "parameters": {name: persist_value(value, storage) for name, value in parameters.items()},
        "flow_run": {"id": str(flow_ctx.flow_run.id), "name": flow_ctx.flow_run.name} if flow_ctx else None,
        "log_prints": engine.context.log_prints,
        "storage": str(storage.basepath) if storage else None,
        "rate_limit": engine.task.rate_limit,
        "rename": engine.rename,
    }


def execute(body: dict[str, Any], client: OrchestrationClient, claim: dict[str, Any] | None = None) -> Deferred | None:
    """Orchestrate the task run `body` describes; Deferred(seconds) if it must start again later.

    `claim` (worker, hostname, pid, dispatch) makes the run this worker's in the same call as its
    Running proposal; NotClaimed if it cannot be. If the task's code or parameters cannot even be
    loaded here, the run ends Crashed saying why, and the error is raised for the worker's log.
    """
    try:
        engine = _engine(body, client)
    except Exception as exc:
        if claim is not None:
            _crash_unloadable(body, client, claim, exc)
        raise
    engine.claim = claim
    outcome = run_sync(engine.steps(), longest_sleep=LONGEST_SLEEP_IN_WORKER)
    return outcome if isinstance(outcome, Deferred) else None


def _crash_unloadable(body: dict[str, Any], client: OrchestrationClient, claim: dict[str, Any], exc: Exception) -> None:
    """End the run Crashed, naming the worker and the error, if it is this worker's to end (not held
    by another live worker, not finished). Left Pending, it would wait forever; left to the sweep,
    it would be sent here again and again."""
    from sdk.states import Crashed

    run_id = UUID(body["task_run_id"])
    status, _ = client.claim_task_run(run_id, **claim)
    if status == "claimed":
        message = (f"Crashed: worker {claim['worker']} on {claim['hostname']} could not load the task run: "
                   f"{type(exc).__name__}: {exc}")  # fmt: skip
        client.set_task_run_state(run_id, Crashed(message=message).to_schema())


def _engine(body: dict[str, Any], client: OrchestrationClient) -> TaskRunEngine:
    """An engine attached to the run `body` names, its task loaded and its parameters read."""
    from sdk import tasks
    from sdk.engine.task_engine import TaskRunEngine
    from sdk.entrypoints import load

    task = load(body["task"])
    if not isinstance(task, tasks.Task):
        raise NotSendable(f"{body['task']} is not a @task (got {type(task).__name__})")
    task = copy.copy(task)
    task.task_key = body["task_key"]  # as the flow's process named it: cache keys depend on it
    storage = _storage(body["storage"]) if body.get("storage") else None
    parameters = {name: load_value(ref) for name, ref in body["parameters"].items()}
    flow_ctx = _flow_context(body, client, storage)
    engine = TaskRunEngine(task, parameters, client=client, flow_ctx=flow_ctx)
    _attach(engine, body, flow_ctx)
    return engine


@lru_cache(maxsize=16)
def _storage(basepath: str) -> LocalFileSystem:
    """The flow's result storage, made once per path: making one resolves the path (system calls),
    a tenth of a no-op run's time in a worker, and it holds nothing but that path."""
    return LocalFileSystem(basepath)


def _flow_context(body: dict[str, Any], client: OrchestrationClient, storage: LocalFileSystem | None) -> FlowRunContext | None:
    """What the task reads of its flow run: its id and name (for logs), storage, and results kept."""
    flow_run = body.get("flow_run")
    if not flow_run:
        return None
    return FlowRunContext(
        client=client, log_prints=body.get("log_prints", False),
        flow_run=RunInfo(id=UUID(flow_run["id"]), name=flow_run["name"]),
        result_storage=storage, persist_result=True,  # the flow's process reads the result from storage
    )  # fmt: skip


def _attach(engine: TaskRunEngine, body: dict[str, Any], flow_ctx: FlowRunContext | None) -> None:
    """Point the engine at the run the flow's process created, instead of a new one."""
    engine.dynamic_key = body["dynamic_key"]
    engine.run = RunInfo(id=UUID(body["task_run_id"]), name=body["name"], parameters=engine.parameters,
                         tags=body.get("tags", []))  # fmt: skip
    engine.context = TaskRunContext(client=engine.client, task=engine.task, task_run=engine.run,
                                    flow_run_context=flow_ctx, log_prints=body.get("log_prints", False))  # fmt: skip
    engine.created = True
    engine.rename = bool(body.get("rename"))
