"""The `flow` and `flow-run` commands, over runs made by real SDK flows.

Flows get names unique to this module, so the assertions hold however many
other flows share the test database. Most tests call the commands in process
with call_command; the subprocess tests check `python manage.py` itself: the
hyphenated command name, `--help`, and the exit code of an error.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sdk import flow, get_run_context, get_run_logger, task

ROOT = Path(__file__).resolve().parents[2]
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| (?P<level>[A-Z]+) *\| (?P<logger>\S+) - (?P<message>.*)$")


@dataclass
class Runs:
    """The flows and runs this module made: names, and run ids oldest first."""

    work: str
    fail: str
    parent: str
    work_ids: list[str]
    fail_id: str
    parent_id: str


def _current_run_id() -> str:
    return str(get_run_context().flow_run.id)


@pytest.fixture(scope="module")
def runs() -> Runs:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"

    @task(name=f"{prefix}-square")
    def square(x: int) -> int:
        get_run_logger().info("squaring %s", x)
        return x * x

    @flow(name=f"{prefix}-work")
    def work(n: int) -> str:
        get_run_logger().warning("work starts with n=%s", n)
        [square(i) for i in range(n)]
        get_run_logger().info("work is done")
        return _current_run_id()

    fail_ids: list[str] = []

    @flow(name=f"{prefix}-fail")
    def fail() -> None:
        fail_ids.append(_current_run_id())
        raise ValueError("this flow always fails")

    @flow(name=f"{prefix}-child")
    def child() -> int:
        return 1

    @flow(name=f"{prefix}-parent")
    def parent() -> str:
        child()
        return _current_run_id()

    work_ids = [work(n) for n in (1, 2, 3)]
    fail(return_state=True)
    return Runs(work.name, fail.name, parent.name, work_ids, fail_ids[0], parent())


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def table_rows(text: str) -> list[list[str]]:
    """A table's body rows, cells split on the two-space column gap."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line) for line in lines[1:] if not line.startswith("(")]


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """`python manage.py ...` against this session's RUNWAY_HOME and database."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "orchestrator.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


# flow ls


def test_flow_ls_shows_each_flow_with_its_run_count_and_last_state(runs: Runs):
    rows = {row[0]: row for row in table_rows(run_command("flow", "ls"))}

    assert rows[runs.work][2] == "3"
    assert rows[runs.work][4] == "Completed"
    assert rows[runs.fail][2] == "1"
    assert rows[runs.fail][4] == "Failed"


def test_flow_ls_json_gives_ids_counts_and_last_run(runs: Runs):
    flows = {f["name"]: f for f in json.loads(run_command("flow", "ls", "--json"))}

    work = flows[runs.work]
    assert uuid.UUID(work["id"])
    assert work["run_count"] == 3
    assert work["last_run_state_type"] == "COMPLETED"
    assert work["last_run_time"] is not None


# flow-run ls


def test_flow_run_ls_lists_a_flows_runs_newest_first(runs: Runs):
    rows = table_rows(run_command("flow-run", "ls", "--flow", runs.work))

    assert [row[0] for row in rows] == runs.work_ids[::-1]
    assert {row[2] for row in rows} == {runs.work}
    assert {row[3] for row in rows} == {"Completed"}
    assert all(row[5].endswith("s") for row in rows)  # a duration such as 0.012s


def test_flow_run_ls_filters_by_state(runs: Runs):
    failed = json.loads(run_command("flow-run", "ls", "--state", "failed", "--limit", "500", "--json"))
    ids = {r["id"] for r in failed}

    assert runs.fail_id in ids
    assert not ids & set(runs.work_ids)
    assert {r["state_type"] for r in failed} == {"FAILED"}


def test_flow_run_ls_accepts_several_state_types_in_any_case(runs: Runs):
    for states in (["FAILED", "Completed"], ["failed,completed"]):
        out = run_command("flow-run", "ls", "--state", *states, "--limit", "500", "--json")
        ids = {r["id"] for r in json.loads(out)}
        assert {runs.fail_id, *runs.work_ids} <= ids


def test_flow_run_ls_rejects_an_unknown_state_and_names_the_valid_ones():
    with pytest.raises(CommandError, match=r"unknown state type 'done'; use one of: scheduled, .*completed"):
        run_command("flow-run", "ls", "--state", "done")


def test_flow_run_ls_rejects_an_unknown_flow_name():
    with pytest.raises(CommandError, match=r"flow 'no-such-flow' does not exist; .*flow ls"):
        run_command("flow-run", "ls", "--flow", "no-such-flow")


def test_flow_run_ls_limit_keeps_the_newest_and_says_more_exist(runs: Runs):
    out = run_command("flow-run", "ls", "--flow", runs.work, "--limit", "2")

    assert [row[0] for row in table_rows(out)] == runs.work_ids[:0:-1]
    assert "raise --limit" in out


def test_flow_run_ls_rejects_a_limit_below_one():
    with pytest.raises(CommandError, match="expected a whole number of 1 or more, got '0'"):
        run_command("flow-run", "ls", "--limit", "0")


# flow-run inspect


def test_flow_run_inspect_shows_fields_history_and_task_runs(runs: Runs):
    out = run_command("flow-run", "inspect", runs.work_ids[-1])

    assert f"id               {runs.work_ids[-1]}" in out
    assert f"flow             {runs.work} (" in out
    assert "state            Completed" in out
    assert 'parameters       {"n": 3}' in out
    assert "run count        1" in out
    history = out.split("State history")[1].split("Task runs")[0]
    assert [row[1] for row in table_rows(history)] == ["PENDING", "RUNNING", "COMPLETED"]
    task_runs = table_rows(out.split("Task runs (3)")[1])
    assert [row[1] for row in task_runs] == [f"{runs.work.removesuffix('-work')}-square-{i}" for i in range(3)]
    assert {row[2] for row in task_runs} == {"Completed"}


def test_flow_run_inspect_accepts_a_unique_id_prefix(runs: Runs):
    out = run_command("flow-run", "inspect", runs.fail_id[:8])

    assert f"id               {runs.fail_id}" in out
    assert "Flow run encountered an exception: ValueError: this flow always fails" in out


def test_flow_run_inspect_json_has_the_state_history_and_task_runs(runs: Runs):
    detail = json.loads(run_command("flow-run", "inspect", runs.work_ids[1], "--json"))

    assert detail["id"] == runs.work_ids[1]
    assert detail["parameters"] == {"n": 2}
    assert [s["type"] for s in detail["states"]] == ["PENDING", "RUNNING", "COMPLETED"]
    assert [t["state_type"] for t in detail["task_runs"]] == ["COMPLETED", "COMPLETED"]
    assert detail["duration"] > 0


def test_flow_run_inspect_lists_subflow_runs(runs: Runs):
    detail = json.loads(run_command("flow-run", "inspect", runs.parent_id, "--json"))
    out = run_command("flow-run", "inspect", runs.parent_id)

    [subflow] = detail["subflow_runs"]
    assert subflow["flow"] == runs.parent.replace("-parent", "-child")
    assert "Subflow runs (1)" in out and subflow["id"] in out


def test_flow_run_inspect_of_an_unknown_id_is_a_command_error():
    missing = str(uuid.uuid4())
    with pytest.raises(CommandError, match=rf"flow run '{missing}' does not exist; .*flow-run ls"):
        run_command("flow-run", "inspect", missing)


# flow-run logs


def test_flow_run_logs_prints_lines_in_order_in_the_console_layout(runs: Runs):
    lines = run_command("flow-run", "logs", runs.work_ids[1]).splitlines()
    parsed = [LOG_LINE.match(line) for line in lines]

    assert all(parsed), lines
    messages = [m["message"] for m in parsed]
    mine = [m for m in messages if m.startswith(("work", "squaring"))]
    assert mine == ["work starts with n=2", "squaring 0", "squaring 1", "work is done"]
    first = parsed[messages.index("work starts with n=2")]
    assert (first["level"], first["logger"]) == ("WARNING", "runway.flow_runs")
    assert lines[messages.index("squaring 0")].split(" | ")[1] == "INFO   "


def test_flow_run_logs_level_leaves_out_lower_lines(runs: Runs):
    lines = run_command("flow-run", "logs", runs.work_ids[1], "--level", "warning").splitlines()

    assert [LOG_LINE.match(line)["message"] for line in lines] == ["work starts with n=2"]


def test_flow_run_logs_no_task_runs_leaves_out_task_run_lines(runs: Runs):
    out = run_command("flow-run", "logs", runs.work_ids[1], "--no-task-runs")

    assert "work is done" in out
    assert "squaring" not in out and "runway.task_runs" not in out


def test_flow_run_logs_rejects_an_unknown_level(runs: Runs):
    with pytest.raises(CommandError, match=r"unknown log level 'loud'; use one of: DEBUG, INFO"):
        run_command("flow-run", "logs", runs.work_ids[0], "--level", "loud")


def test_a_noun_without_a_verb_is_a_command_error():
    with pytest.raises(CommandError, match="required: VERB"):
        run_command("flow-run")


# python manage.py, in a subprocess


def test_flow_run_help_runs_through_manage_py_and_lists_the_verbs():
    result = manage("flow-run", "--help")

    assert result.returncode == 0, result.stderr
    assert "usage: manage.py flow-run" in result.stdout
    for verb in ("inspect", "logs", "ls"):
        assert re.search(rf"^\s+{verb}\s+\S", result.stdout, re.MULTILINE), result.stdout


def test_every_level_of_help_describes_its_verbs_and_options():
    flow_help, ls_help = manage("flow", "--help"), manage("flow-run", "ls", "--help")

    assert flow_help.returncode == 0 and "List flows by name" in flow_help.stdout
    assert ls_help.returncode == 0
    for option in ("--flow NAME", "--state TYPE", "--limit N", "--json"):
        assert option in ls_help.stdout


def test_manage_py_reads_the_same_database_and_fails_cleanly_on_a_bad_id(runs: Runs):
    found = manage("flow-run", "inspect", runs.fail_id)
    missing = manage("flow-run", "inspect", "0000ffff")

    assert found.returncode == 0, found.stderr
    assert runs.fail in found.stdout
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "CommandError: flow run '0000ffff' does not exist; list them with `python manage.py flow-run ls`"
    )
