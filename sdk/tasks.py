"""`@task`: a function whose calls become orchestrated, retried, cached and logged task runs."""
from __future__ import annotations

import asyncio
import datetime
import hashlib
import inspect
import json
import pickle
from collections.abc import Callable, Iterable
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from orchestrator.schemas.rates import parse_rate
from sdk.annotations import allow_failure, quote, unmapped
from sdk.context import TaskRunContext
from sdk.engine.parameters import bind
from sdk.engine.timeouts import shielded
from sdk.exceptions import MappingLengthMismatch, MappingMissingIterable
from sdk.filesystems import LocalFileSystem
from sdk.futures import in_async_context

if TYPE_CHECKING:
    from sdk.transactions import Transaction

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    """A task: call it to run it now, `.submit()` it to a task runner, `.map()` it over iterables."""

    def __init__(
        self, fn: Callable[P, R], name: str | None = None, description: str | None = None,
        tags: Iterable[str] | None = None, version: str | None = None,
        cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None, refresh_cache: bool | None = None,
        task_run_name: str | Callable[[], str] | None = None, retries: int | None = None,
        retry_delay_seconds: float | list[float] | Callable[[int], list[float]] | None = None,
        retry_jitter_factor: float | None = None, retry_condition_fn: Callable[..., bool] | None = None,
        persist_result: bool | None = None, result_storage: LocalFileSystem | None = None,
        timeout_seconds: float | None = None, log_prints: bool | None = None,
        queue: str | None = None, rate_limit: str | None = None,
        on_completion: list[Callable] | None = None, on_failure: list[Callable] | None = None,
        on_commit: list[Callable] | None = None, on_rollback: list[Callable] | None = None,
    ) -> None:  # fmt: skip
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")
        update_wrapper(self, fn)
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn)
        self.tags = set(tags or ())
        self.version = version
        self.cache_key_fn, self.cache_expiration, self.refresh_cache = cache_key_fn, cache_expiration, refresh_cache
        self.task_run_name = task_run_name
        self.retries = _non_negative_int("retries", retries or 0)
        delay = retry_delay_seconds(self.retries) if callable(retry_delay_seconds) else retry_delay_seconds
        self.retry_delay_seconds = _delays(delay)
        self.retry_jitter_factor = _non_negative("retry_jitter_factor", retry_jitter_factor)
        self.retry_condition_fn = retry_condition_fn
        self.persist_result, self.result_storage = persist_result, result_storage
        self.timeout_seconds = _positive("timeout_seconds", timeout_seconds)
        self.log_prints = log_prints
        self.queue = queue  # CeleryTaskRunner: the Celery queue of this task's runs
        self.rate_limit = _rate_limit(self.name, rate_limit)  # CeleryTaskRunner: runs per s/m/h on each worker
        self.on_completion, self.on_failure = list(on_completion or []), list(on_failure or [])
        # sdk.transactions: called with the task run's Transaction when its transaction commits or rolls back
        self.on_commit_hooks, self.on_rollback_hooks = list(on_commit or []), list(on_rollback or [])
        if cache_key_fn is not None and persist_result is False:
            raise ValueError(f"task {self.name!r}: caching needs persisted results; drop persist_result=False")
        if cache_expiration is not None and not isinstance(cache_expiration, datetime.timedelta):
            raise TypeError(f"task {self.name!r}: cache_expiration must be a datetime.timedelta")
        self.task_key = f"{fn.__module__}.{fn.__qualname__}"

    @property
    def empirical_policy(self) -> dict[str, Any]:
        """What the orchestrator's retry rule reads."""
        return {"retries": self.retries, "retry_delay": self.retry_delay_seconds,
                "retry_jitter_factor": self.retry_jitter_factor}  # fmt: skip

    def task_run_name_for(self, parameters: dict[str, Any]) -> str | None:
        if self.task_run_name is None:
            return None
        if callable(self.task_run_name):
            return str(self.task_run_name())
        return self.task_run_name.format(**parameters)

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy of this task with some options changed."""
        current = {
            "name": self.name, "description": self.description, "tags": self.tags, "version": self.version,
            "cache_key_fn": self.cache_key_fn, "cache_expiration": self.cache_expiration,
            "refresh_cache": self.refresh_cache, "task_run_name": self.task_run_name,
            "retries": self.retries, "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor, "retry_condition_fn": self.retry_condition_fn,
            "persist_result": self.persist_result, "result_storage": self.result_storage,
            "timeout_seconds": self.timeout_seconds, "log_prints": self.log_prints,
            "queue": self.queue, "rate_limit": self.rate_limit,
            "on_completion": self.on_completion, "on_failure": self.on_failure,
            "on_commit": self.on_commit_hooks, "on_rollback": self.on_rollback_hooks,
        }  # fmt: skip
        unknown = set(options) - set(current)
        if unknown:
            raise TypeError(f"with_options got unknown option(s): {', '.join(sorted(unknown))}")
        return Task(self.fn, **{**current, **options})

    def on_commit(self, fn: Callable[[Transaction], None]) -> Callable[[Transaction], None]:
        """`@my_task.on_commit`: call `fn(txn)` for each run of this task when its transaction commits."""
        self.on_commit_hooks.append(fn)
        return fn

    def on_rollback(self, fn: Callable[[Transaction], None]) -> Callable[[Transaction], None]:
        """`@my_task.on_rollback`: call `fn(txn)` for each completed run of this task when its transaction rolls back."""
        self.on_rollback_hooks.append(fn)
        return fn

    # --- running -------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return_state = kwargs.pop("return_state", False)
        wait_for = kwargs.pop("wait_for", None)
        from sdk.engine.calls import call_task

        with shielded():
            return call_task(self, bind(self.fn, args, kwargs), wait_for=wait_for, return_state=return_state)

    def submit(self, *args: Any, return_state: bool = False, wait_for: list[Any] | None = None, **kwargs: Any) -> Any:
        """Hand a run of this task to the flow's task runner; returns a future (or, with return_state, the final state)."""
        from sdk.engine.calls import submit_task

        with shielded():
            future = submit_task(self, bind(self.fn, args, kwargs), wait_for=wait_for)
        return future.wait() if return_state else future

    def map(self, *args: Any, return_state: bool = False, wait_for: list[Any] | None = None, **kwargs: Any) -> list[Any]:
        """Submit one run per element of the iterable arguments; `unmapped(x)` and non-iterables are passed to every run."""
        from sdk.engine.calls import submit_tasks

        calls = _mapped_parameters(self.fn, args, kwargs)
        with shielded():  # the runs are created together, in one orchestrator call per chunk
            futures = submit_tasks(self, [bind(self.fn, (), params) for params in calls], wait_for=wait_for)
        if not return_state:
            return MappedFutures(futures)
        if in_async_context() and inspect.iscoroutinefunction(self.fn):  # Prefect 2: `await task.map(..., return_state=True)`
            return asyncio.gather(*[f.wait() for f in futures])
        return [f.wait() for f in futures]

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"


class MappedFutures(list):
    """The futures of a `.map()`: a list, which async flows may also `await`, as in Prefect 2."""

    def __await__(self):
        yield from asyncio.sleep(0).__await__()
        return list(self)


def _mapped_parameters(fn: Callable, args: tuple, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    from sdk.futures import RunwayFuture

    # A future is mapped over its result, as in Prefect 2 (unmapped(future) is passed whole).
    parameters = {k: v.result() if isinstance(v, RunwayFuture) else v for k, v in bind(fn, args, kwargs).items()}
    # allow_failure([...]) and quote([...]) map over their contents, each item wrapped again.
    wrappers = {k: type(v) for k, v in parameters.items() if isinstance(v, (allow_failure, quote))}
    parameters = {k: v.value if k in wrappers else v for k, v in parameters.items()}
    iterables = {k: list(v) for k, v in parameters.items() if _is_mappable(v)}
    if not iterables:
        given = ", ".join(f"{k}={v!r}" for k, v in parameters.items()) or "no arguments"
        raise MappingMissingIterable(f"map() needs at least one iterable argument to map over; got {given}")
    lengths = {len(v) for v in iterables.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in iterables.items())
        raise MappingLengthMismatch(f"map() needs iterables of one length; got {sizes}")
    static = {k: v.value if isinstance(v, unmapped) else v for k, v in parameters.items() if k not in iterables}
    calls = [{**static, **{k: v[i] for k, v in iterables.items()}} for i in range(lengths.pop())]
    return [{k: wrappers[k](v) if k in wrappers else v for k, v in call.items()} for call in calls]


def _is_mappable(value: Any) -> bool:
    if isinstance(value, (unmapped, str, bytes, dict)):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _rate_limit(task_name: str, value: Any) -> str | None:
    """Celery's rate syntax ("10/s", "100/m", "5/h"), checked when the task is defined."""
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise ValueError(f"task {task_name!r}: {exc}") from None


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number of at least 0, got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number of at least 0, got {value!r}")
    return value


def _positive(name: str, value: Any) -> float | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"{name} must be a number above 0, got {value!r}")
    return value


def _delays(value: Any) -> float | list[float]:
    if value is None:
        return 0
    if isinstance(value, (list, tuple)):
        return [_non_negative("retry_delay_seconds", v) for v in value]
    return _non_negative("retry_delay_seconds", value)


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...
@overload
def task(**options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(__fn: Callable[P, R] | None = None, **options: Any) -> Any:
    """Make a function a task: `@task` or `@task(retries=3, ...)`."""
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)


# --- caching helpers, under Prefect's names ------------------------------------------

def task_input_hash(context: TaskRunContext, arguments: dict[str, Any]) -> str | None:
    """A cache key from the task's identity, its code and its arguments (None if they cannot be hashed)."""
    fn = context.task.fn
    parts = [context.task.task_key, fn.__code__.co_code.hex(), arguments]
    try:
        payload = json.dumps(parts, sort_keys=True).encode()
    except (TypeError, ValueError):
        try:
            payload = pickle.dumps(parts)
        except Exception:
            return None
    return hashlib.sha256(payload).hexdigest()[:32]


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """retry_delay_seconds=exponential_backoff(10): 10, 20, 40... seconds for successive retries."""

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**attempt for attempt in range(retries)]

    return delays

