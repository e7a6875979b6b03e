"""`@flow`: a function whose calls become orchestrated flow runs, with their task runs inside."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import update_wrapper
from typing import Any, Generic, ParamSpec, TypeVar, overload

from sdk.engine.parameters import bind
from sdk.engine.timeouts import shielded
from sdk.filesystems import LocalFileSystem
from sdk.task_runners import BaseTaskRunner, ConcurrentTaskRunner
from sdk.tasks import _non_negative, _non_negative_int, _positive

P = ParamSpec("P")
R = TypeVar("R")


class Flow(Generic[P, R]):
    """A flow: call it to run it; it returns what the function returns (or its final state)."""

    def __init__(
        self, fn: Callable[P, R], name: str | None = None, version: str | None = None,
        flow_run_name: str | Callable[[], str] | None = None, retries: int | None = None,
        retry_delay_seconds: float | None = None, task_runner: BaseTaskRunner | type | None = None,
        description: str | None = None, timeout_seconds: float | None = None,
        validate_parameters: bool = True, persist_result: bool | None = None,
        result_storage: LocalFileSystem | None = None, log_prints: bool | None = None,
        on_completion: list[Callable] | None = None, on_failure: list[Callable] | None = None,
        on_cancellation: list[Callable] | None = None, on_crashed: list[Callable] | None = None,
    ) -> None:  # fmt: skip
        if not callable(fn):
            raise TypeError(f"@flow needs a function, got {fn!r}")
        update_wrapper(self, fn)
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        self.version = version
        self.flow_run_name = flow_run_name
        self.retries = _non_negative_int("retries", retries or 0)
        self.retry_delay_seconds = _non_negative("retry_delay_seconds", retry_delay_seconds) or 0
        runner = task_runner if task_runner is not None else ConcurrentTaskRunner()
        self.task_runner = runner() if isinstance(runner, type) else runner
        if not isinstance(self.task_runner, BaseTaskRunner):
            raise TypeError(f"flow {self.name!r}: task_runner must be a task runner, got {task_runner!r}")
        self.description = description or inspect.getdoc(fn)
        self.timeout_seconds = _positive("timeout_seconds", timeout_seconds)
        self.should_validate_parameters = validate_parameters
        self.persist_result, self.result_storage = persist_result, result_storage
        self.log_prints = log_prints
        self.on_completion, self.on_failure = list(on_completion or []), list(on_failure or [])
        self.on_cancellation, self.on_crashed = list(on_cancellation or []), list(on_crashed or [])

    def flow_run_name_for(self, parameters: dict[str, Any]) -> str:
        """The run's name: the flow_run_name template or callable, else a friendly adjective-animal slug."""
        if callable(self.flow_run_name):
            return str(self.flow_run_name())
        if self.flow_run_name:
            return self.flow_run_name.format(**parameters)
        return generated_run_name()

    def with_options(self, **options: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed."""
        current = {
            "name": self.name, "version": self.version, "flow_run_name": self.flow_run_name,
            "retries": self.retries, "retry_delay_seconds": self.retry_delay_seconds,
            "task_runner": self.task_runner.duplicate(), "description": self.description,
            "timeout_seconds": self.timeout_seconds, "validate_parameters": self.should_validate_parameters,
            "persist_result": self.persist_result, "result_storage": self.result_storage,
            "log_prints": self.log_prints, "on_completion": self.on_completion,
            "on_failure": self.on_failure, "on_cancellation": self.on_cancellation,
            "on_crashed": self.on_crashed,
        }  # fmt: skip
        unknown = set(options) - set(current)
        if unknown:
            raise TypeError(f"with_options got unknown option(s): {', '.join(sorted(unknown))}")
        return Flow(self.fn, **{**current, **options})

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return_state = kwargs.pop("return_state", False)
        wait_for = kwargs.pop("wait_for", None)  # a subflow's upstream futures, as for a task
        from sdk.engine.calls import call_flow

        with shielded():
            return call_flow(self, bind(self.fn, args, kwargs), return_state=return_state, wait_for=wait_for)

    def deploy(self, name: str, **options: Any) -> Any:
        """Deploy this flow under `name` (see sdk.deployments.deploy for `work_queue_name`,
        `parameters`, `tags`, `description`, `version`, `paused`, `storage`)."""
        from sdk.deployments import deploy

        return deploy(self, name=name, **options)

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...
@overload
def flow(**options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(__fn: Callable[P, R] | None = None, **options: Any) -> Any:
    """Make a function a flow: `@flow` or `@flow(retries=2, log_prints=True, ...)`."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)


def generated_run_name() -> str:
    """A friendly adjective-animal slug, such as 'misty-swan'."""
    from coolname import generate_slug

    return generate_slug(2)
