"""The reliability suite: faults, load and invariants against real workers, beat, agents and servers.

Runnable on its own (`pytest tests/reliability`). Timing settings are the small test values
of tests/conftest.py (heartbeat 0.5 s, heartbeat timeout 6 s, sweep 1 s); each test states
the bound it checks.
"""
from __future__ import annotations

import uuid

import pytest

from tests.deployments.conftest import agent_flow, start_beat, wait_until  # noqa: F401  (fixtures)
from tests.reliability.ledger import ensure_ledger
from tests.workers.conftest import start_worker  # noqa: F401  (a fixture)


@pytest.fixture(scope="session", autouse=True)
def _ledger_table() -> None:
    ensure_ledger()


@pytest.fixture
def ledger_group() -> str:
    """A name for this test's rows in the executions ledger."""
    return f"g-{uuid.uuid4().hex[:10]}"
