"""Persisting run results and exceptions, and loading them back from a state's reference.

Plain JSON values (None, bools, numbers, strings, lists and str-keyed dicts of
them) are stored inline in the state row when small; anything else is pickled to
the local file store. A result reference never holds code to run: the pickle files
are written and read only by this machine's own processes. A JSON value holding a
secret this process read goes to the file store too, never into the database.
"""
from __future__ import annotations

import json
import math
import pickle
import traceback
import uuid
from typing import Any

from sdk.exceptions import CancelledRun, CrashedRun, FailedRun, MissingResult
from sdk.filesystems import LocalFileSystem
from sdk.redaction import holds_secret, redact

INLINE_LIMIT = 16 * 1024  # bytes of JSON kept in the state row; larger values go to a file
UNPERSISTED = {"type": "unpersisted"}


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """True if JSON would give back exactly `value` (a tuple would come back a list, so: False)."""
    if depth > 50:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(is_plain_json(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def persist_value(value: Any, storage: LocalFileSystem | None) -> dict[str, Any]:
    """Store `value`; return the reference recorded in the state."""
    if is_plain_json(value):
        text = json.dumps(value)
        if len(text) <= INLINE_LIMIT and not holds_secret(text):  # a secret value stays out of the database
            return {"type": "json", "value": value}
        return _write(storage, text.encode(), "json")
    return _write(storage, pickle.dumps(value), "pickle")


def persist_exception(exc: BaseException, storage: LocalFileSystem | None) -> dict[str, Any]:
    """Store an exception so `State.result()` can raise it again, with its text for people.

    Secret values are redacted from the text; an exception that holds one is kept as that text
    only (`State.result()` elsewhere raises FailedRun with it), so no copy of the value is written."""
    ref = {
        "type": "exception",
        "exception": redact(f"{type(exc).__name__}: {exc}"),
        "traceback": redact("".join(traceback.format_exception(exc))),
    }
    try:
        content = pickle.dumps(exc)
        if not holds_secret(content):
            ref.update(_write(storage, content, "pickle"))
            ref["type"] = "exception"
    except Exception:  # unpicklable exceptions keep their text only
        pass
    return ref


def _write(storage: LocalFileSystem | None, content: bytes, serializer: str) -> dict[str, Any]:
    storage = storage or LocalFileSystem()
    key = uuid.uuid4().hex
    storage.write_path(key, content)
    return {"type": "file", "storage": str(storage.basepath), "key": key, "serializer": serializer}


def load_value(ref: dict[str, Any] | None) -> Any:
    """The value a reference points to; raises MissingResult when it was not persisted."""
    kind = (ref or {}).get("type")
    if kind == "json":
        return ref["value"]
    if kind in ("file", "exception") and ref.get("key"):
        content = LocalFileSystem(ref["storage"]).read_path(ref["key"])
        return json.loads(content) if ref["serializer"] == "json" else pickle.loads(content)
    raise MissingResult(
        "this state's result was not persisted; set persist_result=True on the flow or task to keep it"
    )


def load_exception(ref: dict[str, Any] | None, state_type: str, message: str | None) -> BaseException:
    """The exception a failed, crashed or cancelled state stands for."""
    if ref and ref.get("type") == "exception" and ref.get("key"):
        try:
            exc = load_value(ref)
            if isinstance(exc, BaseException):
                return exc
        except Exception:  # missing file, or a class that cannot be rebuilt: fall back to the text
            pass
    text = (ref or {}).get("exception") or message or state_type.title()
    return {"CRASHED": CrashedRun, "CANCELLED": CancelledRun}.get(state_type, FailedRun)(text)
