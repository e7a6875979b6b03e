"""Arguments of a task run: futures resolved to results, upstream runs recorded, values made JSON-safe."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import uuid
from collections.abc import Callable
from typing import Any

from sdk.annotations import BaseAnnotation, allow_failure, quote
from sdk.exceptions import UpstreamTaskError
from sdk.states import State

_COLLECTIONS = (list, tuple, set, frozenset)


def visit(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """Rebuild lists, tuples, sets and dicts with `leaf` applied to everything else.

    The fields of dataclasses and pydantic models are visited too, as Prefect 2 does (a future
    in a config object is waited for and replaced by its result); such an object is copied only
    when `leaf` changed something in it, and one met again inside itself is left as it is. A
    `quote` is a leaf: nothing inside it is visited.
    """
    return _visit(value, leaf, frozenset())[0]


def _visit(value: Any, leaf: Callable[[Any], Any], within: frozenset[int]) -> tuple[Any, bool]:
    """`visit`, answering also whether `leaf` changed anything."""
    if isinstance(value, quote):
        new = leaf(value)
        return new, new is not value
    if isinstance(value, (*_COLLECTIONS, dict)):
        return _visit_collection(value, leaf, within)
    fields = _fields(value)
    if fields is None:
        new = leaf(value)
        return new, new is not value
    if id(value) in within:
        return value, False
    changed = {}
    for name in fields:
        new, differs = _visit(getattr(value, name), leaf, within | {id(value)})
        if differs:
            changed[name] = new
    if not changed:
        return value, False
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **changed), True
    return value.model_copy(update=changed), True


def _visit_collection(value: Any, leaf: Callable[[Any], Any], within: frozenset[int]) -> tuple[Any, bool]:
    if type(value) is dict:
        pairs = {key: _visit(item, leaf, within) for key, item in value.items()}
        return {key: new for key, (new, _) in pairs.items()}, any(differs for _, differs in pairs.values())
    if type(value) not in _COLLECTIONS and not isinstance(value, list):  # a dict or tuple subclass: a leaf
        new = leaf(value)
        return new, new is not value
    items = [_visit(item, leaf, within) for item in value]
    kind = type(value) if type(value) in _COLLECTIONS else list  # list subclasses (.map()'s futures) become lists
    return kind(new for new, _ in items), any(differs for _, differs in items)


def _fields(value: Any) -> list[str] | None:
    """The fields to visit of a dataclass instance or a pydantic model; None for anything else."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [field.name for field in dataclasses.fields(value) if field.init]
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(value, "model_copy"):
        return list(model_fields)
    return None


def upstream_runs(parameters: dict[str, Any], wait_for: list[Any] | None) -> dict[str, list[dict[str, str]]]:
    """For each parameter, the task runs whose futures or states fed it: the observed dependency graph."""
    found: dict[str, list[dict[str, str]]] = {}
    for name, value in [*parameters.items(), ("wait_for", wait_for or [])]:
        ids = [str(future.task_run_id) for future in _futures_in(value)]
        if ids:
            found[name] = [{"input_type": "task_run", "id": run_id} for run_id in dict.fromkeys(ids)]
    return found


def upstream_futures(parameters: dict[str, Any], wait_for: list[Any] | None) -> list[Any]:
    """The futures among the parameters and `wait_for`: what `resolve` waits for."""
    return [future for value in [*parameters.values(), wait_for or []] for future in _futures_in(value)]


def unresolved(parameters: dict[str, Any]) -> bool:
    """Whether any parameter holds a future, a state or an annotation: what `resolve` replaces."""
    from sdk.futures import RunwayFuture

    found: list[Any] = []

    def leaf(value: Any) -> Any:
        if isinstance(value, (RunwayFuture, State, BaseAnnotation)):
            found.append(value)
        return value

    for value in parameters.values():
        visit(value, leaf)
    return bool(found)


def _futures_in(value: Any) -> list[Any]:
    found: list[Any] = []
    visit(value, lambda leaf: _collect_future(leaf, found))
    return found


def _collect_future(value: Any, found: list[Any]) -> Any:
    from sdk.futures import RunwayFuture

    if isinstance(value, quote):  # not looked into: no dependency is recorded or waited for
        return value
    if isinstance(value, BaseAnnotation):
        visit(value.value, lambda leaf: _collect_future(leaf, found))
    elif isinstance(value, RunwayFuture):
        found.append(value)
    return value


def resolve(parameters: dict[str, Any], wait_for: list[Any] | None) -> dict[str, Any]:
    """Wait for upstream futures and replace them with their results.

    Raises UpstreamTaskError if one did not complete, unless it failed and is wrapped in
    allow_failure (as in Prefect 2: a crashed, cancelled or not-ready upstream still stops
    the run). `wait_for` only orders: its runs' results are not read.
    """
    visit(wait_for or [], lambda leaf: _resolve_leaf(leaf, allowed=False, data=False))
    return {name: visit(value, lambda leaf: _resolve_leaf(leaf, allowed=False)) for name, value in parameters.items()}


def _resolve_leaf(value: Any, allowed: bool, data: bool = True) -> Any:
    from sdk.futures import RunwayFuture

    if isinstance(value, allow_failure):
        return visit(value.value, lambda leaf: _resolve_leaf(leaf, allowed=True, data=data))
    if isinstance(value, quote):
        return value.value
    if isinstance(value, BaseAnnotation):
        return visit(value.value, lambda leaf: _resolve_leaf(leaf, allowed, data))
    if isinstance(value, RunwayFuture):
        state, label = value.final_state(), repr(value.name)
    elif isinstance(value, State):
        state, label = value, repr(value.name)
    else:
        return value
    if not state.is_completed() and not (allowed and state.is_failed()):
        raise UpstreamTaskError(f"Upstream task run {label} did not reach a 'COMPLETED' state.")
    return state.result(raise_on_failure=False) if data else None


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a parameter value for display and storage; unknown objects become their repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if depth > 20:
        return repr(value)[:1000]
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (*_COLLECTIONS,)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, (dt.date, dt.time, uuid.UUID, pathlib.PurePath, decimal.Decimal, dt.timedelta)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), depth + 1)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return repr(value)[:1000]
