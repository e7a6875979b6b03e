"""The names a Prefect 2 user imports exist under `sdk` and behave as documented."""
from __future__ import annotations

import importlib

import pytest

PREFECT_NAMES = {
    "sdk": ["flow", "task", "get_run_logger", "tags", "unmapped", "allow_failure", "State"],
    "sdk.task_runners": ["SequentialTaskRunner", "ConcurrentTaskRunner"],
    "sdk.tasks": ["task_input_hash", "exponential_backoff"],
    "sdk.states": ["StateType", "Completed", "Failed", "Crashed", "Cancelled", "Pending", "Running",
                   "Scheduled", "Paused", "Cancelling", "AwaitingRetry", "Retrying", "Late"],
    "sdk.context": ["get_run_context", "FlowRunContext", "TaskRunContext"],
    "sdk.runtime": ["flow_run", "task_run"],
    "sdk.logging": ["disable_run_logger", "get_run_logger"],
    "sdk.filesystems": ["LocalFileSystem"],
    "sdk.futures": ["PrefectFuture"],
    "sdk.exceptions": ["ParameterTypeError", "MissingContextError", "UpstreamTaskError", "CrashedRun",
                       "FailedRun", "MissingResult", "PrefectException"],
}  # fmt: skip


@pytest.mark.parametrize("module,names", PREFECT_NAMES.items())
def test_prefect_2_names_are_importable(module, names):
    loaded = importlib.import_module(module)
    missing = [name for name in names if not hasattr(loaded, name) and not _submodule(module, name)]
    assert missing == []


def _submodule(module: str, name: str) -> bool:
    try:
        importlib.import_module(f"{module}.{name}")
        return True
    except ImportError:
        return False


def test_runtime_and_context_describe_the_current_runs():
    from sdk import flow, task
    from sdk.context import get_run_context
    from sdk.runtime import flow_run, task_run

    @task
    def where():
        return task_run.name, task_run.task_name, flow_run.flow_name, get_run_context().task_run.name

    @flow(flow_run_name="run-for-{day}")
    def daily(day: str):
        return flow_run.name, flow_run.parameters, where()

    name, params, (task_name, task_fn_name, flow_name, ctx_name) = daily("monday")
    assert name == "run-for-monday" and params == {"day": "monday"}
    assert (task_name, task_fn_name, flow_name, ctx_name) == ("where-0", "where", "daily", "where-0")
    assert flow_run.name is None and task_run.id is None


def test_importing_sdk_does_not_touch_the_database():
    from tests.sdk.conftest import run_script

    result = run_script("import sys, sdk; print('django.db.models' in sys.modules)")
    assert result.stdout.strip() == "False"
