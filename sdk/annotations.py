"""Wrappers that change how a task treats an argument: `unmapped`, `allow_failure`, `quote`."""
from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class BaseAnnotation(Generic[T]):
    def __init__(self, value: T):
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class unmapped(BaseAnnotation[T]):
    """Pass the same value to every call of `task.map` instead of iterating over it."""

    def __getitem__(self, _: Any) -> T:
        return self.value


class allow_failure(BaseAnnotation[T]):
    """Run the downstream task even if this upstream future or state failed; it receives the exception."""


class quote(BaseAnnotation[T]):
    """Pass the value as is: the engine will not look inside it for futures."""
