"""Helpers for SDK tests: read back what the engine recorded, through the orchestrator's models."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdk.logging.handlers import flush_logs

REPO = Path(__file__).resolve().parents[2]


def latest_flow_run(flow):
    """The newest run of `flow` (a Flow object or a flow name), with its states and task runs."""
    from orchestrator.runs.models import FlowRun

    name = flow if isinstance(flow, str) else flow.name
    return FlowRun.objects.filter(flow__name=name).latest("created")


def state_names(run) -> list[str]:
    return [s.name for s in run.states.order_by("timestamp")]


def logs_of(run) -> list[str]:
    from orchestrator.runs.selectors import log_list

    flush_logs()
    return [log.message for log in log_list(flow_run_id=run.id)]


def run_script(code: str, home: Path | None = None, timeout: float = 60, **env_overrides: str) -> subprocess.CompletedProcess:
    """Run Python code in a fresh process sharing this session's database unless `home` is given."""
    env = {**os.environ, **env_overrides}
    if home is not None:
        env["RUNWAY_HOME"] = str(home)
        env.pop("RUNWAY_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


@pytest.fixture
def unique_name(request) -> str:
    """A flow name no other test uses."""
    return "t-" + request.node.name.replace("_", "-")[:60]
