"""Secret values this process read, replaced by ******** in everything it sends out.

`sdk.secrets` registers every value it loads (and the value of any Secret built
with one). Before text leaves the process it goes through `redact`: log lines,
stored and printed (`log_prints` output included; sdk/logging/handlers.py), state
messages and the exception text and traceback recorded for Failed and Crashed
states (`State.to_schema`, sdk/results.py), and flow run parameters
(sdk/engine/flow_engine.py). A result or exception holding a value is kept out of
the database: in the file store, or as its redacted text only (sdk/results.py).

A value is matched as it is and as repr() and JSON write it (quotes, backslashes
and newlines escaped), longer values first, so a secret inside another leaves
nothing of the longer one behind. With nothing registered, `redact` returns its
argument at once.
"""
from __future__ import annotations

import json
import re
import threading
from typing import Any

MASK = "********"
_forms: set[str] = set()
_lock = threading.Lock()
_text: re.Pattern[str] | None = None
_bytes: re.Pattern[bytes] | None = None


def register_secret(value: str) -> None:
    """Redact `value` from now on, in this process."""
    global _text, _bytes
    if not isinstance(value, str) or not value:
        return
    forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    with _lock:
        if forms <= _forms:
            return
        _forms.update(forms)
        ordered = sorted(_forms, key=len, reverse=True)
        _bytes = re.compile(b"|".join(re.escape(form.encode("utf-8", "surrogatepass")) for form in ordered))
        _text = re.compile("|".join(map(re.escape, ordered)))


def redact(text: str) -> str:
    """`text` with every registered value replaced by ********."""
    pattern = _text
    if pattern is None or not isinstance(text, str) or not text:
        return text
    return pattern.sub(MASK, text)


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with every registered value in its strings redacted."""
    if _text is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(key) if isinstance(key, str) else key: redact_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    return value


def holds_secret(data: str | bytes) -> bool:
    """Whether `data` (text, or bytes such as a pickle) contains a registered value."""
    pattern = _bytes if isinstance(data, bytes) else _text
    return pattern is not None and pattern.search(data) is not None
