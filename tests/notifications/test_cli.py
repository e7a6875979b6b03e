"""`python manage.py notification`: create, ls, inspect, test, enable, disable, delete; help and errors."""
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

from orchestrator.notifications.models import NotificationRule
from orchestrator.schemas import StateType

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("notification", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def name():
    name = f"cli-{uuid.uuid4().hex[:6]}"
    yield name
    NotificationRule.objects.filter(name=name).delete()


def test_create_ls_inspect_test_disable_enable_delete(name, flow_name, make_run, webhook_server, local_webhooks):
    created = run("create", name, "--channel", "webhook", "--target", f"{webhook_server.url}/cli", "-s", "failed,crashed",
                  "--state", "Late", "-f", flow_name, "--tag", "etl", "--secret", "k", "--title", "{flow_name} {state_name}")  # fmt: skip
    rule = NotificationRule.objects.get(name=name)
    assert created == (f"Created notification rule {name!r} (id {rule.pk}): webhook on Failed, Crashed, Late. "
                       f"Try it with `python manage.py notification test {rule.pk}`.\n")  # fmt: skip
    make_run(StateType.PENDING, StateType.FAILED, tags=["etl"])

    listed = [row for row in json.loads(run("ls", "--json")) if row["name"] == name]
    table = [line for line in run("ls").splitlines() if f" {name} " in line]
    assert [(r["states"], r["target"], r["has_secret"]) for r in listed] == [(["Failed", "Crashed", "Late"], f"{webhook_server.url}/…", True)]
    assert table and "webhook" in table[0] and f"flow {flow_name}; tag etl" in table[0]

    assert run("test", name, "--inline") == f"Sent a test message through {name!r}: HTTP 200.\n"
    shown = run("inspect", name)
    detail = json.loads(run("inspect", str(rule.pk), "--json"))
    assert f"Name:        {name}" in shown and "Signed:      yes" in shown and "(test)" in shown
    assert [(d["is_test"], d["status"]) for d in detail["deliveries"]] == [(True, "sent"), (False, "pending")]
    assert run("disable", name) == f"Disabled notification rule {name!r}.\n" and not NotificationRule.objects.get(name=name).enabled
    assert run("enable", str(rule.pk)) == f"Enabled notification rule {name!r}.\n"
    assert run("delete", name) == f"Deleted notification rule {name!r}.\n"
    assert not NotificationRule.objects.filter(name=name).exists()


def test_a_test_that_fails_or_that_no_worker_takes_exits_with_the_reason(name, settings_override, request):
    from tests.conftest import free_port

    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["127.0.0.1"], RUNWAY_NOTIFICATION_MAX_ATTEMPTS=1)
    run("create", name, "-c", "webhook", "-t", f"http://127.0.0.1:{free_port()}/nobody", "-s", "Failed")
    with pytest.raises(CommandError, match=f"the test message through '{name}' was not sent: POST to 127.0.0.1 failed: ConnectError"):
        run("test", name, "--inline")
    request.getfixturevalue("unserved_queue")
    with pytest.raises(CommandError, match="no worker sent the test message within 0.3 s; is one running"):
        run("test", name, "--wait", "0.3")


def test_errors_name_the_problem_and_the_fix(name):
    with pytest.raises(CommandError, match="unknown state 'Borked' for a notification rule; use any of: Scheduled"):
        run("create", name, "-c", "email", "-t", "a@example.com", "-s", "Borked")
    with pytest.raises(CommandError, match="webhook host 'localhost' resolves to 127.0.0.1, a loopback address"):
        run("create", name, "-c", "slack", "-t", "http://localhost/hook", "-s", "Failed")
    with pytest.raises(CommandError, match="no notification rule 'nope-x'; list them with `python manage.py notification ls`"):
        run("inspect", "nope-x")


def test_help_at_every_level_and_bad_arguments_exit_with_a_message():
    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", "notification", *args], cwd=ROOT, capture_output=True, text=True)

    noun, create, test = manage("--help"), manage("create", "--help"), manage("test", "--help")
    assert noun.returncode == 0 and all(v in noun.stdout for v in ("create", "ls", "inspect", "test", "delete", "enable"))
    assert create.returncode == 0 and "a named state (Late) only on that name" in create.stdout and "{flow_run_url}" in create.stdout
    assert test.returncode == 0 and "--inline" in test.stdout
    missing = manage("create", "x", "--channel", "webhook")
    wrong = manage("create", "x", "-c", "pager", "-t", "y", "-s", "Failed")
    assert missing.returncode != 0 and "the following arguments are required: -t/--target, -s/--state" in missing.stderr
    assert wrong.returncode != 0 and "invalid choice: 'pager'" in wrong.stderr
