"""The server process: one ASGI process for the API, admin, docs and static files, on the shared database."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.sdk.conftest import run_script

REPO = Path(__file__).resolve().parents[2]


def test_the_admin_its_static_files_and_the_api_docs_are_served(live_server, make_token):
    login = httpx.get(f"{live_server}/admin/login/")
    assert login.status_code == 200 and "Runway administration" in login.text
    css = httpx.get(f"{live_server}/static/admin/css/base.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    headers = {"Authorization": f"Bearer {make_token('read')}"}
    docs = httpx.get(f"{live_server}/api/docs/", headers=headers)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    asset = next(part.split('"')[0] for part in docs.text.split('src="')[1:] if "swagger-ui-bundle" in part)
    assert httpx.get(f"{live_server}{asset}").status_code == 200  # self-hosted, no CDN
    schema = httpx.get(f"{live_server}/api/schema/", headers={**headers, "Accept": "application/json"})
    assert schema.json()["openapi"].startswith("3.")
    assert "/api/flow_runs/{id}/set_state/" in schema.json()["paths"]


def test_the_server_serves_the_history_of_ephemeral_runs(live_server, make_token):
    done = run_script(
        "from sdk import flow, task\n"
        "@task\ndef one(): return 1\n"
        "@flow(name='ephemeral-then-served')\ndef f(): return one()\n"
        "print(f())"
    )
    assert done.returncode == 0, done.stderr
    api = httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {make_token('read')}"})
    runs = api.get("flow_runs/", params={"flow_name": "ephemeral-then-served"}).json()["results"]
    assert runs and runs[0]["state"]["type"] == "COMPLETED"
    tasks = api.get("task_runs/", params={"flow_run": runs[0]["id"]}).json()["results"]
    assert [t["state"]["name"] for t in tasks] == ["Completed"]
    logs = api.get("logs/", params={"flow_run": runs[0]["id"]}).json()["results"]
    assert any("Finished in state Completed()" in entry["message"] for entry in logs)


def test_the_first_start_creates_an_account_and_prints_how_to_log_in(tmp_path):
    env = {**os.environ, "RUNWAY_HOME": str(tmp_path)}
    env.pop("RUNWAY_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "manage.py", "setup"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Log in to the UI and admin at http://127.0.0.1:8000/admin/ as 'admin' with password" in done.stdout
    token = done.stdout.split("RUNWAY_API_KEY=")[1].split()[0]
    again = subprocess.run([sys.executable, "manage.py", "setup"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "accounts already exist" in again.stdout and token not in again.stdout
    check = subprocess.run(
        [sys.executable, "-c", "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='orchestrator.settings';"
         "django.setup();from orchestrator.accounts.services import token_authenticate as t;"
         f"print(t(raw={token!r}).user.username)"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.stdout.strip() == "admin", check.stderr
