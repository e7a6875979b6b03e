"""Which code a deployment may run: its code and entrypoint checked before they are registered and run.

A deployment names its stored code (`code_path`, a directory under one of
RUNWAY_DEPLOYMENT_ROOTS) and an entrypoint inside it: "file.py:function" (a path
relative to the code) or "package.module:function" (a module of the code). Refused:
code outside the roots, a path leaving the code (`../x.py:f`, a symbolic link out),
a module that is not part of the code (`os:system`), and a name that is not a
function decorated with @flow (or assigned from `flow(...)`) at the top level of
its file. The @flow check reads the file's syntax: nothing is imported or run.

The API checks before it registers a deployment (orchestrator/api/deployments.py)
and an agent checks again before it imports anything (workers/flow_process.py), so
a row written some other way is refused too.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from django.conf import settings

from orchestrator.exceptions import InvalidInput

MAX_SOURCE_BYTES = 10 * 1024 * 1024


class EntrypointRefused(InvalidInput):
    """Raised when a deployment's code or entrypoint is not one the orchestrator lets agents run."""


def deployment_code_check(*, code_path: str, entrypoint: str, roots: Iterable[Path] | None = None) -> Path:
    """The file holding the entrypoint's flow, when the deployment may run it; EntrypointRefused otherwise."""
    code = _code_dir(code_path, list(settings.RUNWAY_DEPLOYMENT_ROOTS if roots is None else roots))
    where, sep, name = (entrypoint or "").rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise EntrypointRefused(f"entrypoint {entrypoint!r} must look like 'file.py:function' or "
                                "'package.module:function', naming a function at the top level")  # fmt: skip
    source = _file_in_code(code, where) if where.endswith(".py") else _module_in_code(code, where)
    if not source.is_file():
        raise EntrypointRefused(f"entrypoint {entrypoint!r}: there is no {source} in the deployment's code {code}")
    if not _defines_flow(source, name):
        raise EntrypointRefused(f"entrypoint {entrypoint!r}: {name!r} is not a @flow function at the top level of "
                                f"{source.name}; a deployment runs a flow, so decorate the function with @flow")  # fmt: skip
    return source


def _code_dir(code_path: str, roots: list[Path]) -> Path:
    path = Path(code_path or "")
    if not path.is_absolute():
        raise EntrypointRefused(f"code_path {code_path!r} must be an absolute path under RUNWAY_DEPLOYMENT_ROOTS")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root.expanduser().resolve()) for root in roots):
        shown = ", ".join(str(root) for root in roots) or "none"
        raise EntrypointRefused(f"code_path {code_path!r} is outside the deployment roots ({shown}); deploy with "
                                "`flow.deploy()` or `manage.py deployment create`, which copy the code into "
                                "RUNWAY_DEPLOYMENT_STORAGE, or add its directory to RUNWAY_DEPLOYMENT_ROOTS")  # fmt: skip
    return resolved


def _file_in_code(code: Path, where: str) -> Path:
    relative = PurePosixPath(where)
    if relative.is_absolute() or ".." in relative.parts or "\\" in where:
        raise EntrypointRefused(f"entrypoint file {where!r} must be a path inside the deployment's code, "
                                "relative to it and without '..'")  # fmt: skip
    return _inside(code, code.joinpath(*relative.parts), where)


def _module_in_code(code: Path, where: str) -> Path:
    parts = where.split(".")
    if not all(part.isidentifier() for part in parts):
        raise EntrypointRefused(f"entrypoint module {where!r} is not a dotted module name")
    package = code.joinpath(*parts)
    candidates = [package.with_suffix(".py"), package / "__init__.py"]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise EntrypointRefused(f"entrypoint module {where!r} is not part of the deployment's code {code} (only its "
                                "own modules run, not installed ones such as os or subprocess)")  # fmt: skip
    return _inside(code, found, where)


def _inside(code: Path, path: Path, where: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(code):
        raise EntrypointRefused(f"entrypoint {where!r} leads outside the deployment's code {code} (to {resolved})")
    return resolved


def _defines_flow(source: Path, name: str) -> bool:
    """Whether the file's top level defines `name` as a function decorated with @flow, or as flow(...)."""
    if source.stat().st_size > MAX_SOURCE_BYTES:
        raise EntrypointRefused(f"{source} is larger than {MAX_SOURCE_BYTES // 2**20} MiB; is it a flow's code?")
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (SyntaxError, ValueError) as error:
        raise EntrypointRefused(f"{source} is not valid Python: {error}") from None
    is_flow = False  # the last top-level definition of the name is the one a module ends with
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            is_flow = any(_names_flow(decorator) for decorator in node.decorator_list)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            is_flow = isinstance(node.value, ast.Call) and _names_flow(node.value.func)
    return is_flow


def _names_flow(expression: ast.expr) -> bool:
    """`flow`, `sdk.flow`, `flow(...)` or `sdk.flow(...)`."""
    if isinstance(expression, ast.Call):
        expression = expression.func
    if isinstance(expression, ast.Name):
        return expression.id == "flow"
    return isinstance(expression, ast.Attribute) and expression.attr == "flow"
