"""`python manage.py concurrency-limit`: create (or change), ls, inspect, delete, and clear errors."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestrator.limits.models import ConcurrencyLimit
from orchestrator.runs import services
from orchestrator.schemas import State, StateType

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("concurrency-limit", *args, stdout=out)
    return out.getvalue()


def test_create_ls_inspect_delete(make_flow_run):
    tag = f"cli-{uuid.uuid4().hex[:6]}"
    assert run("create", tag, "2") == f"Created concurrency limit 2 for tag {tag!r}.\n"
    assert run("create", tag, "1") == f"Updated concurrency limit 1 for tag {tag!r}.\n"
    flow_run = make_flow_run(StateType.PENDING, StateType.RUNNING)
    holder, _ = services.task_run_create(flow_run_id=flow_run.id, task_key="t", dynamic_key="0", name="holder-0",
                                         state=State(StateType.PENDING), tags=[tag], then=State(StateType.RUNNING))  # fmt: skip

    listed = [row for row in json.loads(run("ls", "--json")) if row["tag"] == tag]
    table = run("ls")
    shown = run("inspect", tag)
    detail = json.loads(run("inspect", tag, "--json"))

    assert [(row["concurrency_limit"], row["active_count"]) for row in listed] == [(1, 1)]
    assert any(line.split()[:3] == [tag, "1", "1"] for line in table.splitlines())
    assert f"Tag:       {tag}" in shown and "holder-0" in shown and str(holder.id) in shown
    assert [slot["task_run_id"] for slot in detail["active_slots"]] == [str(holder.id)]
    assert run("delete", tag) == f"Deleted the concurrency limit for tag {tag!r}.\n"
    assert not ConcurrencyLimit.objects.filter(tag=tag).exists()


def test_unknown_tags_name_the_fix():
    with pytest.raises(CommandError, match="no concurrency limit for tag 'nope-x'; list them with"):
        run("inspect", "nope-x")
    with pytest.raises(CommandError, match="no concurrency limit for tag 'nope-x'"):
        run("delete", "nope-x")


def test_help_at_every_level_and_a_bad_limit_exits_with_a_message():
    noun = subprocess.run([sys.executable, "manage.py", "concurrency-limit", "--help"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    verb = subprocess.run([sys.executable, "manage.py", "concurrency-limit", "create", "--help"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    bad = subprocess.run([sys.executable, "manage.py", "concurrency-limit", "create", "db", "-1"], cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert noun.returncode == 0 and all(verb in noun.stdout for verb in ("create", "ls", "inspect", "delete"))
    assert verb.returncode == 0 and "Runs already holding slots are not stopped" in verb.stdout
    assert bad.returncode != 0 and "expected a whole number of 0 or more, got '-1'" in bad.stderr
