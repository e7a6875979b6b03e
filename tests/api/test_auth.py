"""Every endpoint needs credentials; read tokens only read; sessions need CSRF on writes."""
from __future__ import annotations

import uuid

import httpx
import pytest
from django.core.management import call_command

from orchestrator.accounts.models import ApiToken
from orchestrator.accounts.services import token_find

ENDPOINTS = [
    ("GET", "flows/"), ("POST", "flows/"), ("GET", "flow_runs/"), ("POST", "flow_runs/"),
    ("GET", "flow_runs/counts/"), ("GET", f"flow_runs/{uuid.uuid4()}/"),
    ("POST", f"flow_runs/{uuid.uuid4()}/set_state/"), ("GET", f"flow_runs/{uuid.uuid4()}/states/"),
    ("GET", "task_runs/"), ("POST", "task_runs/"), ("POST", f"task_runs/{uuid.uuid4()}/set_state/"),
    ("GET", "logs/"), ("POST", "logs/"), ("GET", "schema/"), ("GET", "docs/"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_refuses_requests_without_credentials(live_server, method, path):
    response = httpx.request(method, f"{live_server}/api/{path}", json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_operation_of_the_schema_refuses_requests_without_credentials(live_server, make_token):
    """The list above, checked against the schema: no route is left out."""
    schema = httpx.get(f"{live_server}/api/schema/", headers={"Authorization": f"Bearer {make_token('read')}",
                                                              "Accept": "application/json"}).json()  # fmt: skip
    operations = [(method.upper(), path) for path, item in schema["paths"].items() for method in item]
    assert len(operations) >= 20
    for method, path in operations:
        ident = "1" if path.startswith("/api/notifications/") else str(uuid.uuid4())  # rules have numeric ids
        url = live_server + path.replace("{id}", ident)
        assert httpx.request(method, url, json={}).status_code == 401, (method, path)


def test_a_wrong_or_revoked_token_is_refused_with_a_message(live_server, make_token):
    raw = make_token()
    assert httpx.get(f"{live_server}/api/flows/", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    call_command("token", "revoke", raw[:12])
    refused = httpx.get(f"{live_server}/api/flows/", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 401
    assert "invalid or revoked API token" in refused.json()["detail"]
    bogus = httpx.get(f"{live_server}/api/flows/", headers={"Authorization": "Bearer rwy_nope"})
    assert bogus.status_code == 401


def test_a_read_token_reads_but_cannot_write(live_server, make_token):
    headers = {"Authorization": f"Bearer {make_token('read')}"}
    assert httpx.get(f"{live_server}/api/flow_runs/", headers=headers).status_code == 200
    refused = httpx.post(f"{live_server}/api/flows/", headers=headers, json={"name": "read-only-attempt"})
    assert refused.status_code == 403
    assert "read-only" in refused.json()["detail"]


def test_tokens_are_stored_hashed_and_shown_once(make_token, capsys):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="cli-owner")
    call_command("token", "create", "--user", "cli-owner", "--name", "laptop", "--scope", "read")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    token = ApiToken.objects.get(user__username="cli-owner", name="laptop")
    assert raw.startswith("rwy_") and token.scope == "read"
    stored = [str(getattr(token, f.attname)) for f in ApiToken._meta.fields]
    assert raw not in stored and token.digest != raw
    call_command("token", "ls", "--user", "cli-owner")
    listing = capsys.readouterr().out
    assert "laptop" in listing and raw not in listing and token.prefix in listing


def test_revoking_an_unknown_token_names_it(make_token):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="'no-such-token' matches no active token"):
        call_command("token", "revoke", "no-such-token")


def test_session_writes_need_the_csrf_token(live_server):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="browser", password="a-long-password-1", is_staff=True)
    with httpx.Client(base_url=live_server, follow_redirects=False) as browser:
        browser.get("/admin/login/")
        csrf = browser.cookies["csrftoken"]
        login = browser.post("/admin/login/?next=/admin/", data={
            "username": "browser", "password": "a-long-password-1", "csrfmiddlewaretoken": csrf})  # fmt: skip
        assert login.status_code == 302
        assert browser.get("/api/flows/").status_code == 200  # the session reads
        without = browser.post("/api/flows/", json={"name": "csrf-check"})
        assert without.status_code == 403 and "CSRF" in without.json()["detail"]
        csrf = browser.cookies["csrftoken"]
        with_token = browser.post("/api/flows/", json={"name": "csrf-check"},
                                  headers={"X-CSRFToken": csrf, "Referer": live_server + "/"})  # fmt: skip
        assert with_token.status_code == 201


def test_token_find_by_whole_secret_prefix_or_name(make_token):
    raw = make_token()
    by_secret = token_find(ref=raw)
    assert token_find(ref=by_secret.prefix) == by_secret
    assert token_find(ref="test", user=by_secret.user) == by_secret
