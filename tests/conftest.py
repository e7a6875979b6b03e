"""Test session set-up: a private RUNWAY_HOME and a real database, migrated once.

By default the database is SQLite under a temporary RUNWAY_HOME. With
RUNWAY_TEST_POSTGRES=1 a fresh PostgreSQL database is created on the local
server (RUNWAY_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432)
and dropped afterwards. Tests commit for real; they isolate by creating their own
flows and runs, never by rolling back.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="runway-tests-")
os.environ["RUNWAY_HOME"] = _HOME
os.environ.pop("RUNWAY_API_URL", None)
os.environ.setdefault("RUNWAY_LOG_FLUSH_INTERVAL", "0.05")
# Worker tests use the local Redis as broker, on a queue of this session's own, so that
# sessions running side by side never take each other's messages.
os.environ["RUNWAY_BROKER_URL"] = os.environ.get("RUNWAY_TEST_BROKER_URL", "redis://127.0.0.1:6379/0")
os.environ["RUNWAY_DEFAULT_QUEUE"] = f"runway-test-{uuid.uuid4().hex[:8]}"
# Workers' liveness in seconds, small so that lost runs are found quickly in tests.
os.environ.setdefault("RUNWAY_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("RUNWAY_HEARTBEAT_TIMEOUT", "6")  # margin for heartbeats delayed by a loaded machine
os.environ.setdefault("RUNWAY_SWEEP_SECONDS", "1")
os.environ.setdefault("RUNWAY_RESEND_SECONDS", "3")
# Notification webhooks reach only the hosts a test allows (its local receiver), never the network:
# rules made by other tests (the schema fuzzer's among them) cannot send anywhere else.
os.environ["RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS"] = "false"
os.environ.setdefault("RUNWAY_CANCEL_CHECK_SECONDS", "0.2")  # how soon a cancelled run's process notices
os.environ.setdefault("RUNWAY_CANCEL_GRACE_SECONDS", "3")  # then an agent kills a process that did not stop
_PG_SERVER = os.environ.get("RUNWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
_PG_NAME = f"runway_test_{uuid.uuid4().hex[:8]}"
USING_POSTGRES = os.environ.get("RUNWAY_TEST_POSTGRES") == "1"


def _admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{_PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def _set_up_database() -> None:
    """Runs when this conftest is imported, before any test module or nested conftest imports Django models."""
    if USING_POSTGRES:
        _admin_sql(f'CREATE DATABASE "{_PG_NAME}"')
        os.environ["RUNWAY_DATABASE_URL"] = f"{_PG_SERVER}/{_PG_NAME}"
    from sdk.client.database import ensure_database

    ensure_database()


_set_up_database()


def pytest_unconfigure(config: pytest.Config) -> None:
    from django.db import connections

    from sdk.client import close_client

    close_client()
    connections.close_all()
    if USING_POSTGRES:
        _admin_sql(f'DROP DATABASE IF EXISTS "{_PG_NAME}" WITH (FORCE)')
    if not os.environ.get("RUNWAY_TEST_KEEP_HOME"):  # keep worker and server logs to look at
        shutil.rmtree(_HOME, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    return f"runway database: {'PostgreSQL ' + _PG_NAME if USING_POSTGRES else 'SQLite'} (RUNWAY_HOME={_HOME})"


@pytest.fixture
def client():
    """The SDK's orchestration client for this test session (in-process transport)."""
    from sdk.client import get_client

    return get_client()


# --- the live server ---------------------------------------------------------------------
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python manage.py server` in a subprocess on this session's database."""

    def __init__(self, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        if "RUNWAY_HOME" in env:  # a server of another home serves that home's SQLite database
            self.env.pop("RUNWAY_DATABASE_URL", None)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout: float = 60) -> ServerProcess:
        import subprocess
        import sys
        import time

        import httpx

        self.log = open(os.path.join(_HOME, f"server-{self.port}.log"), "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "server", "--port", str(self.port)],
            cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = Path(self.log.name).read_text()[-3000:]
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{output}")
            try:
                httpx.get(f"{self.url}/api/flows/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s; see {self.log.name}")

    def first_token(self) -> str:
        """The token the server printed when it created the first account of a fresh database."""
        import re

        text = Path(self.log.name).read_text()
        return re.search(r"RUNWAY_API_KEY=(\S+)", text).group(1)

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="session")
def live_server():
    """The Runway server serving this session's database: its base URL."""
    server = ServerProcess().start()
    yield server.url
    server.stop()


@pytest.fixture
def make_token():
    """make_token(scope="write") -> a new user's API token (the secret)."""
    from django.contrib.auth import get_user_model

    from orchestrator.accounts.services import token_create

    def make(scope: str = "write", username: str | None = None) -> str:
        user = get_user_model().objects.create_user(username=username or f"u-{uuid.uuid4().hex[:10]}")
        return token_create(user=user, name="test", scope=scope)[1]

    return make


@pytest.fixture
def api(live_server, make_token):
    """An httpx client for the live server's /api/, with a write token."""
    import httpx

    with httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {make_token()}"},
                      timeout=30) as client:  # fmt: skip
        yield client
