"""Registers the `flow-run` command; the code is in orchestrator/runs/management/flow_run.py.

Django names a management command after its module file and lists command
files with pkgutil.iter_modules, which accepts `flow-run.py` as it is; it then
loads it with importlib.import_module, which does not require the name to be a
Python identifier. So this file is what gives the command its hyphenated name,
matching the `<noun> <verb>` spelling of Prefect's CLI (`flow-run ls`).

No `import` statement can name this module, though, and linters and type
checkers reject the file name; so the command class lives in an importable
module and this file only re-exports it. The class is not put in
commands/flow_run.py, because Django would then also offer `flow_run` as a
second command.
"""
from orchestrator.runs.management.flow_run import Command

__all__ = ["Command"]
