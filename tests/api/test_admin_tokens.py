"""Tokens in the admin: made there (the secret shown once), revoked by an action; and list queries stay flat."""
from __future__ import annotations

import re
import uuid

import httpx
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orchestrator.accounts.models import ApiToken


def admin_browser(live_server: str) -> httpx.Client:
    name = f"admin-{uuid.uuid4().hex[:6]}"
    get_user_model().objects.create_superuser(username=name, password="a-long-password-2")
    browser = httpx.Client(base_url=live_server, headers={"Referer": live_server + "/"})
    browser.get("/admin/login/")
    browser.post("/admin/login/", data={"username": name, "password": "a-long-password-2",
                                        "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    return browser


def test_a_token_made_in_the_admin_is_shown_once_works_and_is_revoked_by_the_action(live_server):
    browser = admin_browser(live_server)
    owner = get_user_model().objects.create_user(username=f"owner-{uuid.uuid4().hex[:6]}")
    added = browser.post("/admin/accounts/apitoken/add/", follow_redirects=True, data={
        "user": owner.pk, "name": "from-admin", "scope": "write", "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    assert added.status_code == 200
    raw = re.search(r"it will not be shown again: (rwy_[\w-]+)", added.text).group(1)
    token = ApiToken.objects.get(user=owner, name="from-admin")
    assert token.digest != raw and raw not in browser.get(f"/admin/accounts/apitoken/{token.pk}/change/").text
    api = httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {raw}"})
    assert api.get("flows/").status_code == 200
    revoked = browser.post("/admin/accounts/apitoken/", follow_redirects=True, data={
        "action": "revoke", "_selected_action": [token.pk], "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    assert revoked.status_code == 200
    assert api.get("flows/").status_code == 401


def test_a_duplicate_token_name_in_the_admin_is_a_form_error_not_a_crash(live_server):
    browser = admin_browser(live_server)
    owner = get_user_model().objects.create_user(username=f"owner-{uuid.uuid4().hex[:6]}")
    form = {"user": owner.pk, "name": "twice", "scope": "read"}
    browser.post("/admin/accounts/apitoken/add/", data={**form, "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    again = browser.post("/admin/accounts/apitoken/add/", data={**form, "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    assert again.status_code == 200 and "errornote" in again.text
    assert ApiToken.objects.filter(user=owner, name="twice").count() == 1


def test_listing_runs_costs_the_same_queries_for_two_runs_as_for_twenty(make_token):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token()}", SERVER_NAME="127.0.0.1")
    flow = f"queries-{uuid.uuid4().hex[:6]}"

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/flow_runs/", {"flow_name": flow})
        assert response.status_code == 200
        return len(queries)

    for _ in range(2):
        client.post("/api/flow_runs/", {"flow_name": flow}, content_type="application/json")
    few = list_queries()
    for _ in range(18):
        client.post("/api/flow_runs/", {"flow_name": flow}, content_type="application/json")
    assert list_queries() == few <= 3  # the token, the page; nothing per run
