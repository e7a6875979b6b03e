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

import pytest

_HOME = tempfile.mkdtemp(prefix="runway-tests-")
os.environ["RUNWAY_HOME"] = _HOME
os.environ.pop("RUNWAY_API_URL", None)
os.environ.setdefault("RUNWAY_LOG_FLUSH_INTERVAL", "0.05")
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
    shutil.rmtree(_HOME, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    return f"runway database: {'PostgreSQL ' + _PG_NAME if USING_POSTGRES else 'SQLite'} (RUNWAY_HOME={_HOME})"


@pytest.fixture
def client():
    """The SDK's orchestration client for this test session (in-process transport)."""
    from sdk.client import get_client

    return get_client()
