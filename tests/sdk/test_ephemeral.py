"""Ephemeral first use: `python my_flow.py` with nothing configured creates and migrates the database."""
from __future__ import annotations

import sqlite3

from tests.sdk.conftest import run_script

FLOW = """
from sdk import flow, task

@task
def hello(name):
    return f"hello {name}"

@flow
def greet(name: str = "world"):
    return hello(name)

print(greet())
"""


def test_a_flow_script_creates_and_migrates_the_local_database_on_first_use(tmp_path):
    home = tmp_path / "fresh-home"
    result = run_script(FLOW, home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello world"
    db = sqlite3.connect(home / "runway.sqlite3")
    assert db.execute("select count(*) from runs_flowrun where state_type='COMPLETED'").fetchone() == (1,)
    assert db.execute("select count(*) from runs_taskrunstate").fetchone() == (3,)
    assert db.execute("select count(*) from runs_log").fetchone()[0] >= 3
    assert db.execute("pragma journal_mode").fetchone() == ("wal",)


def test_a_second_run_reuses_the_database(tmp_path):
    home = tmp_path / "home"
    assert run_script(FLOW, home=home).returncode == 0
    assert run_script(FLOW, home=home).returncode == 0
    db = sqlite3.connect(home / "runway.sqlite3")
    assert db.execute("select count(*) from runs_flowrun").fetchone() == (2,)
