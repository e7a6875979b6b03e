"""Finding a flow's or task's object from its reference: "package.module:name" or "path/to/file.py:name".

Nothing executable crosses the broker: a message names the code, and the worker
imports it. A file is loaded under a module name of its own (not `__main__`, so
its `if __name__ == "__main__":` block does not run), with its directory on
sys.path so that its sibling imports work; each file is loaded once per process.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any


class EntrypointError(ImportError):
    """Raised when a reference names no module, file or object; the message says which part was missing."""


_lock = threading.Lock()
_loaded_files: dict[str, Any] = {}  # the reference's path text -> its module: no path resolution per run


def load(reference: str) -> Any:
    """The object `reference` names."""
    where, sep, name = reference.rpartition(":")
    if not sep or not where or not name:
        raise EntrypointError(f"entrypoint {reference!r} must look like 'package.module:name' or 'path/file.py:name'")
    module = _load_file(where) if where.endswith(".py") else _import(where)
    target: Any = module
    for part in name.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise EntrypointError(f"{where} has no {name!r} (looked for {part!r})") from None
    return target


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise EntrypointError(f"cannot import module {module_name!r}: {exc}") from exc


def _load_file(path_text: str) -> Any:
    module = _loaded_files.get(path_text)
    if module is None:
        module = _loaded_files.setdefault(path_text, _load_file_once(path_text))
    return module


def _load_file_once(path_text: str) -> Any:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise EntrypointError(f"no file {str(path)!r}; is the flow's code on this machine at the same path?")
    module_name = "runway_entrypoint_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    with _lock:
        if module_name in sys.modules:
            return sys.modules[module_name]
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return module
