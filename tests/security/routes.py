"""Every URL the server routes, as a concrete path: read from Django's resolver, so that a route added
later is walked without anyone listing it. Parameters get a value their pattern accepts (real ids where
given, else a made-up uuid, number or word); each path is checked to resolve to the pattern it came from."""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

MADE_UP = [str(uuid.UUID("6f1c1c5e-0000-4000-8000-000000000001")), "json", "1", "x", ".json"]
_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Route:
    path: str  # "/api/flows/6f1c.../"
    pattern: str  # "api/^flows/(?P<pk>...)/$", as the resolver shows it
    name: str | None


Values = Callable[[str, str], object]  # (the route's pattern, a parameter's name) -> a real value, or None


def every_route(values: Values | None = None) -> Iterator[Route]:
    """Each routed URL once; `values` gives a route's parameters real values (a real flow run's id...)."""
    for parts in _walk(get_resolver().url_patterns, []):
        name, pattern = parts[-1].name, "".join(str(part.pattern) for part in parts)
        path = "/" + "".join(_fill(part, lambda param, at=pattern: values and values(at, param)) for part in parts)
        found = resolve(path).url_name
        if name and found != name:
            raise AssertionError(f"{path} resolves to the route {found!r}, not {name!r}")
        yield Route(path, pattern, name)


def _walk(patterns: list, prefix: list) -> Iterator[list]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, [*prefix, entry])
        elif isinstance(entry, URLPattern):
            yield [*prefix, entry]


def _fill(entry: URLPattern | URLResolver, value_of: Callable[[str], str | None]) -> str:
    pattern = entry.pattern
    if isinstance(pattern, RoutePattern):
        converters = pattern.converters

        def value(match: re.Match) -> str:
            name = match.group(2)
            return _choose(name, converters[name].regex, value_of)

        return _CONVERTER.sub(value, str(pattern))
    text = _GROUP.sub(lambda match: _choose(match.group(1), match.group(2), value_of), str(pattern))
    return text.lstrip("^").rstrip("$").replace("/?", "/").replace("\\.", ".")


def _choose(name: str, regex: str, value_of: Callable[[str], str | None]) -> str:
    real = value_of(name)
    candidates = [str(real)] if real is not None else []
    candidates += MADE_UP + regex.split("|")[:1]
    for candidate in candidates:
        if re.fullmatch(regex, candidate):
            return candidate
    raise AssertionError(f"no value for <{name}> matching {regex!r}")
