"""Deploying a flow: its default parameters checked against its signature, its code copied into
storage, the deployment registered with the orchestrator.

    pipeline.deploy(name="nightly", work_queue_name="etl-queue", parameters={"msg": "Hello"})
    deploy("flows/etl.py:pipeline", name="nightly", tags=["ETL"])   # what `manage.py deployment create` calls

The copy is what the deployment runs: later edits to the source change nothing until the flow
is deployed again. It is stored by content (its SHA-256 is the run's `code_version`), so
deploying unchanged code again stores nothing new.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from sdk.engine.parameters import signature_of, validate
from sdk.exceptions import ParameterBindError, ParameterTypeError
from sdk.flows import Flow

IGNORED_NAMES = {".git", ".hg", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache",
                 ".ruff_cache", ".tox", ".runway", ".idea", ".vscode"}  # fmt: skip
IGNORED_SUFFIXES = (".pyc", ".pyo")
MAX_CODE_BYTES = 100 * 1024 * 1024


class DeploymentError(ValueError):
    """A flow that cannot be deployed as asked; the message says what to change."""


@dataclass(frozen=True)
class DeployedFlow:
    """What `deploy` registered."""

    id: UUID
    name: str  # flow/deployment
    code_version: str
    code_path: Path
    created: bool  # False: an existing deployment of this name was deployed again


@dataclass(frozen=True)
class _Source:
    """Where a flow's code is: the directory or file to copy, and the entrypoint inside the copy."""

    flow: Flow
    copy_from: Path
    entrypoint: str
    described: str  # as the user named it
    under: str = ""  # the directory the copy goes in, inside the stored code (a package's name)


def deploy(
    flow: Flow | str, *, name: str, parameters: dict[str, Any] | None = None, tags: list[str] | tuple[str, ...] = (),
    description: str | None = None, version: str | None = None, work_queue_name: str | None = None,
    paused: bool = False, storage: str | Path | None = None, cron: str | None = None, interval: float | None = None,
    anchor_date: Any = None, rrule: str | None = None, timezone: str | None = None,
    schedules: list[dict[str, Any]] | None = None, retries: int | None = None, retry_delay_seconds: float | None = None,
) -> DeployedFlow:  # fmt: skip
    """Deploy `flow` (a Flow, or an entrypoint "path/file.py:function" / "package.module:function").

    A schedule: `cron` ("0 9 * * *", in `timezone`), `interval` (seconds, from `anchor_date`) or
    `rrule`; or several as `schedules=[{"cron": ..., "timezone": ...}, ...]`.

    A run whose agent dies, or that fails, is run again while retries remain: the flow's own
    `retries` and `retry_delay_seconds` unless given here.

    Raises ParameterTypeError or ParameterBindError naming a bad default parameter, and
    DeploymentError when the code cannot be found or copied.
    """
    from sdk.client import get_client

    source = _source(flow)
    defaults = _checked_parameters(source.flow, parameters or {})
    code_version, code_path = _store(source.copy_from, Path(storage) if storage else _storage(), under=source.under)
    deployment_id, created = get_client().create_deployment(
        flow_name=source.flow.name, name=name, entrypoint=source.entrypoint, code_path=str(code_path),
        code_version=code_version, parameters=defaults, parameter_schema=parameter_schema(source.flow.fn),
        tags=list(tags), description=description or source.flow.description or "", version=version or "",
        work_queue_name=work_queue_name, paused=paused, source=source.described,
        schedules=_schedules(schedules, cron, interval, anchor_date, rrule, timezone),
        empirical_policy={"retries": source.flow.retries if retries is None else retries,
                          "retry_delay": source.flow.retry_delay_seconds if retry_delay_seconds is None else retry_delay_seconds},
    )  # fmt: skip
    return DeployedFlow(deployment_id, f"{source.flow.name}/{name}", code_version, code_path, created)


def _schedules(schedules: list[dict[str, Any]] | None, cron: str | None, interval: float | None, anchor_date: Any,
               rrule: str | None, timezone: str | None) -> list[dict[str, Any]]:  # fmt: skip
    """The schedules to send: `schedules` as given, plus the one the keyword arguments describe."""
    found = [dict(spec) for spec in schedules or []]
    if cron or interval or rrule:
        one: dict[str, Any] = {"cron": cron, "interval_seconds": interval, "rrule": rrule, "timezone": timezone or "UTC"}
        if anchor_date is not None:
            one["anchor_date"] = anchor_date.isoformat() if hasattr(anchor_date, "isoformat") else str(anchor_date)
        found.append({key: value for key, value in one.items() if value is not None})
    elif timezone or anchor_date is not None:
        raise DeploymentError("timezone and anchor_date go with a schedule: give cron, interval or rrule too")
    return found


# --- finding the code ---------------------------------------------------------------------
def _source(flow: Flow | str) -> _Source:
    if isinstance(flow, str):
        return _source_of_reference(flow)
    if not isinstance(flow, Flow):
        raise DeploymentError(f"deploy() needs a @flow or an entrypoint string, got {type(flow).__name__}")
    fn = flow.fn
    module = sys.modules.get(fn.__module__)
    if getattr(module, fn.__name__, None) is not flow:
        raise DeploymentError(f"flow {flow.name!r} is not a module-level name of {fn.__module__}, so a worker "
                              "could not find it: define it at the top level of a file")  # fmt: skip
    if fn.__module__ == "__main__" or module.__spec__ is None or module.__spec__.name.startswith("runway_entrypoint_"):
        path = Path(inspect.getsourcefile(fn) or "").resolve()
        return _source_of_reference(f"{path}:{fn.__name__}")
    return _source_of_reference(f"{fn.__module__}:{fn.__name__}")


def _source_of_reference(reference: str) -> _Source:
    from sdk.entrypoints import EntrypointError, load

    where, sep, attribute = reference.rpartition(":")
    if not sep or not where or not attribute:
        raise DeploymentError(f"entrypoint {reference!r} must look like 'path/to/file.py:function' or 'package.module:function'")
    try:
        flow = load(reference)
    except EntrypointError as exc:
        raise DeploymentError(str(exc)) from None
    if not isinstance(flow, Flow):
        raise DeploymentError(f"{reference} is not a @flow (got {type(flow).__name__})")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        return _Source(flow, path.parent, f"{path.name}:{attribute}", reference)
    top = where.split(".")[0]
    module = sys.modules[top]
    if getattr(module, "__path__", None):  # a package: copy its directory
        package_dir = Path(next(iter(module.__path__))).resolve()
        return _Source(flow, package_dir, reference, reference, under=top)
    return _Source(flow, Path(module.__file__).resolve(), reference, reference)  # a top-level module: its file


# --- parameters ---------------------------------------------------------------------------
def _checked_parameters(flow: Flow, parameters: dict[str, Any]) -> dict[str, Any]:
    """The defaults, checked: names the flow takes, values of its types, and storable as JSON."""
    signature = signature_of(flow.fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.values())
    unknown = sorted(set(parameters) - set(signature))
    if unknown and not takes_any:
        raise ParameterBindError(f"flow {flow.name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
                                 f"it takes: {', '.join(signature) or 'none'}")  # fmt: skip
    try:
        validate(flow.fn, parameters)
    except ParameterTypeError as exc:  # say it is about the deployment's defaults, not a run
        problems = str(exc).partition("\n")[2]
        raise ParameterTypeError(f"default parameters of flow {flow.name!r} are invalid:\n{problems}") from None
    for key, value in parameters.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ParameterBindError(f"default parameter {key!r} ({type(value).__name__}) is not JSON: a "
                                     "deployment stores its defaults as JSON") from None  # fmt: skip
    return dict(parameters)


def parameter_schema(fn: Any) -> dict[str, Any]:
    """A JSON schema of the function's parameters, from its type hints (for forms and API checks)."""
    from pydantic import TypeAdapter

    from sdk.engine.parameters import type_hints

    hints = type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    additional = False
    for name, param in signature_of(fn).parameters.items():
        if param.kind is param.VAR_KEYWORD:
            additional = True
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        try:
            field = TypeAdapter(hints[name]).json_schema() if name in hints else {}
        except Exception:  # a type pydantic cannot describe: any value
            field = {}
        field = {"title": name.replace("_", " ").title(), **field}
        if param.default is param.empty:
            required.append(name)
        elif _is_json(param.default):
            field["default"] = param.default
        properties[name] = field
    return {"title": "Parameters", "type": "object", "properties": properties, "required": required,
            "additionalProperties": additional}  # fmt: skip


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


# --- storing the code ---------------------------------------------------------------------
def _storage() -> Path:
    from sdk.settings import get_settings

    return get_settings().deployment_storage


def _files(root: Path) -> list[Path]:
    """The files to copy under `root` (or `root` itself if it is a file), sorted, caches and VCS left out."""
    if root.is_file():
        return [root]
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in IGNORED_NAMES)
        found += [Path(directory, f) for f in sorted(files) if not f.endswith(IGNORED_SUFFIXES)]
    return found


def _store(source: Path, storage: Path, *, under: str = "") -> tuple[str, Path]:
    """Copy `source` (a directory's contents, or one file) into `storage`, under the directory
    `under` inside the copy (a package keeps its name), keyed by the content's SHA-256.
    Returns (hash, the stored directory)."""
    files = _files(source)
    total = sum(path.stat().st_size for path in files)
    if total > MAX_CODE_BYTES:
        raise DeploymentError(f"{source} holds {total / 2**20:.0f} MiB of files to copy (more than "
                              f"{MAX_CODE_BYTES // 2**20} MiB): deploy from a directory holding only the flow's code")  # fmt: skip
    layout = [(path, Path(under, path.relative_to(source) if source.is_dir() else path.name)) for path in files]
    digest = hashlib.sha256()
    for path, inside in layout:
        digest.update(inside.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    version = digest.hexdigest()
    target = storage / version[:2] / version
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent))
        for path, inside in layout:
            (staging / inside).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, staging / inside)
        try:
            staging.rename(target)  # all at once: an agent never sees half a copy
        except OSError:  # stored meanwhile by another deploy of the same code
            shutil.rmtree(staging, ignore_errors=True)
    return version, target


# --- running a deployment -------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentFlowRun:
    """A run of a deployment as `run_deployment` last saw it."""

    id: UUID
    name: str
    state: Any  # sdk.states.State; its result() is the flow's return value once Completed
    deployment: str


def run_deployment(
    name: str, *, parameters: dict[str, Any] | None = None, scheduled_time: Any = None,
    timeout: float | None = None, poll_interval: float = 1.0, idempotency_key: str | None = None,
) -> DeploymentFlowRun:  # fmt: skip
    """Run the deployment `name` ("flow/deployment" or its id) on an agent of its work queue and
    wait for the run to end (for at most `timeout` seconds; 0: do not wait).

    Called from inside a flow run, the new run is that run's subflow run, and a retry of the
    caller finds the run its first attempt started instead of starting another.
    """
    from sdk.client import get_client
    from sdk.context import FlowRunContext
    from sdk.states import State

    client = get_client()
    parent = FlowRunContext.get()
    if idempotency_key is None:
        idempotency_key = (f"run_deployment:{parent.flow_run.id}:{name}:{parent.next_dynamic_key('run_deployment:' + name)}"
                           if parent else uuid.uuid4().hex)  # fmt: skip
    run_id = client.create_deployment_run(name, parameters=parameters, scheduled_time=scheduled_time,
                                          parent_flow_run_id=parent.flow_run.id if parent else None,
                                          idempotency_key=idempotency_key)  # fmt: skip
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = client.read_flow_run(run_id)
        state = State.from_schema(found["state"])
        if state.is_final() or (deadline is not None and time.monotonic() >= deadline):
            return DeploymentFlowRun(run_id, found["name"], state, name)
        wait = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.monotonic()))
        time.sleep(wait)
