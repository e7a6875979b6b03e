"""The production settings docs/deployment.md documents: `check --deploy` passes with them (and fails on
the local defaults), and a server started with them redirects to HTTPS, sends HSTS and secure cookies."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ServerProcess

REPO = Path(__file__).resolve().parents[2]


def documented_environment() -> dict[str, str]:
    """The `export RUNWAY_...=...` lines of docs/deployment.md; the database is this session's, and the
    secret key (a command there) a new one."""
    text = (REPO / "docs" / "deployment.md").read_text()
    found = dict(re.findall(r"^export (RUNWAY_\w+)=(\S+)", text, flags=re.MULTILINE))
    assert {"RUNWAY_SECRET_KEY", "RUNWAY_ALLOWED_HOSTS", "RUNWAY_HTTPS", "RUNWAY_CSRF_TRUSTED_ORIGINS"} <= set(found)
    found["RUNWAY_SECRET_KEY"] = secrets.token_urlsafe(50)
    found.pop("RUNWAY_DATABASE_URL", None)  # postgresql://runway:...@db.internal: this session's database instead
    return found


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_check_deploy_passes_with_the_documented_production_settings(tmp_path):
    done = _check_deploy({**os.environ, "RUNWAY_HOME": str(tmp_path), **documented_environment()})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_fails_on_the_local_defaults(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in documented_environment()}
    done = _check_deploy({**env, "RUNWAY_HOME": str(tmp_path)})
    assert done.returncode != 0
    for warning in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"):
        assert warning in done.stderr + done.stdout, warning


def test_a_server_with_the_production_settings_redirects_to_https_and_sends_hsts_and_secure_cookies(make_user):
    env = documented_environment()
    host = env["RUNWAY_ALLOWED_HOSTS"].split(",")[0]
    server = ServerProcess(**env).start()  # it waits for any answer (a 400 here: 127.0.0.1 is not an allowed host)
    try:
        plain = httpx.get(f"{server.url}/login/", headers={"Host": host})
        assert plain.status_code == 301 and plain.headers["location"] == f"https://{host}/login/"
        assert httpx.get(f"{server.url}/login/", headers={"Host": "evil.example"}).status_code == 400

        proxied = {"Host": host, "X-Forwarded-Proto": "https", "Referer": f"https://{host}/login/"}
        page = httpx.get(f"{server.url}/login/", headers=proxied)
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=31536000")
        assert "secure" in page.headers["set-cookie"].lower()  # the CSRF cookie
        user = make_user()
        csrf = {"Cookie": f"csrftoken={page.cookies['csrftoken']}"}  # a Secure cookie: httpx keeps it from http://
        login = httpx.post(f"{server.url}/login/", headers={**proxied, **csrf}, data={
            "username": user.username, "password": "a-long-password-for-security-tests",
            "csrfmiddlewaretoken": page.cookies["csrftoken"]})  # fmt: skip
        session = [c for c in login.headers.get_list("set-cookie") if c.startswith("sessionid=")]
        assert login.status_code == 302 and session and "secure" in session[0].lower() and "httponly" in session[0].lower()
    finally:
        server.stop()
