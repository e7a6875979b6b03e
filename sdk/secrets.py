"""Secrets in flows, with Prefect's Secret block API: values stored encrypted by the orchestrator, read by name.

    from sdk.secrets import Secret

    @task
    def fetch(repo: str) -> dict:
        token = Secret.load("github-token").get()
        ...

Set them with `python manage.py secret set github-token`, the admin, the API, or
`Secret(value="...").save("github-token")`. Reading goes through the client: in
process the orchestrator's service decrypts the value; over HTTP the API answers
it to a write-scoped token only. Every value read, or given to a Secret, is
registered with sdk.redaction: the log lines, state messages and tracebacks this
process sends to the orchestrator show it as ******** (docs/secrets.md).
"""
from __future__ import annotations

from orchestrator.exceptions import ObjectNotFound
from orchestrator.secrets.names import check_secret_name
from sdk.exceptions import RunwayException
from sdk.redaction import MASK, register_secret

__all__ = ["Secret", "SecretNotFound", "get_secret"]


class SecretNotFound(RunwayException, LookupError, ValueError):
    """Raised when no secret has the name asked for (a ValueError, as Prefect's `Secret.load` raises)."""


class Secret:
    """A secret value, loaded by name (`Secret.load(name).get()`) or made to be saved (`Secret(value=...)`).

    Its repr never shows the value: printing or logging the object itself is safe.
    """

    def __init__(self, value: str | None = None, *, name: str | None = None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"a secret's value is text, not {type(value).__name__}")
        self.name = name
        self._value = value
        if value:
            register_secret(value)

    @classmethod
    def load(cls, name: str) -> Secret:
        """The secret stored under `name`, read now; SecretNotFound names an unknown one."""
        return cls(_read(name), name=name)

    def get(self) -> str:
        """The value."""
        if self._value is None:
            raise ValueError("this Secret has no value; load one with Secret.load(name) or make one with Secret(value=...)")
        return self._value

    def save(self, name: str, overwrite: bool = False) -> None:
        """Store the value under `name`; an existing name is an error unless `overwrite`."""
        from sdk.client import get_client

        get_client().set_secret(check_secret_name(name), self.get(), overwrite=overwrite)
        self.name = name

    def __repr__(self) -> str:
        return f"Secret(name={self.name!r}, value={MASK!r})"

    __str__ = __repr__


def get_secret(name: str) -> str:
    """The value of the secret `name` (`Secret.load(name).get()`)."""
    return Secret.load(name).get()


def _read(name: str) -> str:
    from sdk.client import get_client

    check_secret_name(name)
    try:
        value = get_client().read_secret(name)
    except ObjectNotFound as error:
        raise SecretNotFound(str(error)) from None
    register_secret(value)
    return value
