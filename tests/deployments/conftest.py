"""Agents and beat for the deployment tests: real `celery worker` and `celery beat` processes."""
from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.workers.conftest import CeleryProcess, start_worker  # noqa: F401  (start_worker: a fixture)

AGENT_FLOW = '''
import os
import time
from sdk import flow, get_run_context, get_run_logger, task

@task
def record(ledger: str, line: str) -> str:
    with open(ledger, "a") as out:
        out.write(line + "\\n")
    return line

@flow(retries={retries})
def {name}(ledger: str, msg: str = "hello", sleep: float = 0.0) -> str:
    run_id = get_run_context().flow_run.id
    get_run_logger().info("first line: %s", msg)
    if sleep:
        with open(ledger + ".started", "a") as out:
            out.write(f"{{run_id}} {{os.getpid()}}\\n")
        time.sleep(sleep)
    return record(ledger, f"{{run_id}} {{msg}} {version}")
'''


def wait_until(predicate: Callable[[], object], timeout: float = 60, what: str = "the condition") -> object:
    """Poll `predicate` until it answers something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.fixture
def agent_flow(tmp_path):
    """write(retries=0, version="v1") -> (entrypoint, flow name, ledger path): a flow file of a unique flow."""
    name = f"etl_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "flows" / "etl.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger = tmp_path / "ledger.txt"

    def write(retries: int = 0, version: str = "v1") -> tuple[str, str, Path]:
        path.write_text(textwrap.dedent(AGENT_FLOW.format(name=name, retries=retries, version=version)))
        return f"{path}:{name}", name.replace("_", "-"), ledger

    return write


def may_deploy(raw_token: str) -> str:
    """The API token `raw_token`, its user given the permissions to add, change and delete deployments."""
    from django.contrib.auth.models import Permission

    from orchestrator.accounts.services import token_authenticate

    codenames = ["add_deployment", "change_deployment", "delete_deployment"]
    permissions = Permission.objects.filter(content_type__app_label="deployments", codename__in=codenames)
    token_authenticate(raw=raw_token).user.user_permissions.add(*permissions)
    return raw_token


@pytest.fixture
def api(live_server, make_token):
    """An httpx client for the live server's /api/, with a write token of a user who may deploy."""
    import httpx

    with httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {may_deploy(make_token())}"},
                      timeout=30) as client:  # fmt: skip
        yield client


@pytest.fixture
def stored_code() -> str:
    """A directory of deployment storage (under RUNWAY_DEPLOYMENT_ROOTS) holding f.py with the flow `f`:
    the code_path and entrypoint "f.py:f" that deployments posted to the API name."""
    from django.conf import settings

    code = settings.RUNWAY_DEPLOYMENT_STORAGE / "tests" / uuid.uuid4().hex
    code.mkdir(parents=True)
    (code / "f.py").write_text("from sdk import flow\n\n@flow\ndef f(msg: str, n: int = 0) -> str:\n    return msg * n\n")
    return str(code)


class Beat(CeleryProcess):
    """`celery -A workers beat` with the DatabaseScheduler."""

    def __init__(self, **env: str) -> None:
        super().__init__(f"beat-{uuid.uuid4().hex[:6]}", ["beat", "-l", "info", "--pidfile="], **env)


@pytest.fixture
def start_beat(start_worker):
    """start_beat(**env) -> a running Beat, sending to this test's queue (which start_worker set up)."""
    started: list[Beat] = []

    def start(**env: str) -> Beat:
        beat = Beat(**env)
        started.append(beat)
        wait_until(lambda: "beat: Starting..." in beat.output(), 30, "beat starting")
        return beat

    yield start
    for beat in started:
        beat.stop()
