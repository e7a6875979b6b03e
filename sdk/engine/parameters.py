"""Binding call arguments to a function's parameters, and validating them against its type hints."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sdk.exceptions import ParameterBindError, ParameterTypeError


@lru_cache(maxsize=4096)
def signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    """inspect.signature, computed once per function: it costs tens of µs and runs on every call."""
    return inspect.signature(fn)


def bind(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied; ParameterBindError if they do not fit."""
    signature = signature_of(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ParameterBindError(f"Error binding parameters for {fn.__name__}{signature}: {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def call_arguments(fn: Callable[..., Any], parameters: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """Positional and keyword arguments that call `fn` with `parameters`."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    signature = signature_of(fn).parameters
    star = next((n for n, p in signature.items() if p.kind is p.VAR_POSITIONAL), None)
    positional = bool(star and parameters.get(star))  # extra positionals: everything before *args goes by position
    for name, param in signature.items():
        if name not in parameters:
            continue
        value = parameters[name]
        if param.kind is param.VAR_POSITIONAL:
            args.extend(value)
            positional = False
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        elif param.kind is param.POSITIONAL_ONLY or positional:
            args.append(value)
        else:
            kwargs[name] = value
    return tuple(args), kwargs


def validate(fn: Callable[..., Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters checked and coerced against the type hints ("1" becomes 1 for an int), as Prefect does.

    Raises ParameterTypeError naming every bad parameter.
    """
    validated = dict(parameters)
    problems: list[str] = []
    for name, adapter in _adapters(fn):
        if name not in parameters:
            continue
        try:
            validated[name] = adapter.validate_python(parameters[name])
        except Exception as exc:  # pydantic.ValidationError, or a type pydantic cannot handle
            problems.append(f" - {name}: {_first_error(exc)}")
    if problems:
        raise ParameterTypeError("Flow run received invalid parameters:\n" + "\n".join(problems))
    return validated


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{first['msg']}" + (f" (at {where})" if where else "") + f", got {first.get('input')!r}"
    return str(exc)


@lru_cache(maxsize=1024)
def _adapters(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
    from pydantic import ConfigDict, TypeAdapter

    config = ConfigDict(arbitrary_types_allowed=True)
    adapters = []
    hints = type_hints(fn)
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name not in hints:
            continue
        adapter = _adapter(TypeAdapter, hints[name], config)
        if adapter is not None:
            adapters.append((name, adapter))
    return adapters


def _adapter(type_adapter: Any, hint: Any, config: Any) -> Any:
    """A validator for `hint`; models refuse a config, arbitrary classes need one; None if neither works."""
    for options in ({}, {"config": config}):
        try:
            return type_adapter(hint, **options)
        except Exception:
            continue
    return None


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's resolved type hints by parameter name (its raw annotations if they do not resolve)."""
    try:
        import typing

        return typing.get_type_hints(fn)
    except Exception:
        return {name: p.annotation for name, p in inspect.signature(fn).parameters.items() if p.annotation is not p.empty}
