"""Who gets in: every route and API operation refuses a visitor without credentials (except the
allow-list below), tokens are checked and stored hashed, a read token writes nothing, and the live
UI's websocket takes only a logged-in session from this site's own pages."""
from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.management import call_command
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from orchestrator.accounts.models import ApiToken
from orchestrator.accounts.services import token_find
from tests.security.conftest import log_in
from tests.security.routes import every_route

WRITE_METHODS = ("post", "put", "patch", "delete")
# (method, path) -> (status, why it may answer a visitor without credentials)
ALLOWED = {
    ("GET", "/login/"): (200, "the login form"),
    ("POST", "/login/"): (200, "the login form again, saying the (empty) credentials are wrong"),
    ("GET", "/admin/login/"): (200, "the admin's login form"),
    ("POST", "/admin/login/"): (200, "the admin's login form again, saying the credentials are wrong"),
    ("GET", "/logout/"): (405, "logging out is a POST; a GET does nothing"),
    ("GET", "/admin/logout/"): (302, "the admin sends a visitor who logs out to /admin/, which asks to log in"),
    ("POST", "/admin/logout/"): (302, "the same, with nothing to log out"),
    ("GET", "/static/admin/css/base.css"): (200, "static files (CSS, JavaScript) are public"),
}


def _refused(response: httpx.Response) -> bool:
    """401 or 403, or a redirect to a login page."""
    if response.status_code in (401, 403):
        return True
    where = urlsplit(response.headers.get("location", "")).path
    return response.status_code == 302 and where in ("/login/", "/admin/login/")


def test_every_route_refuses_a_visitor_without_credentials_except_the_allow_list(live_server):
    """GET and POST to every routed URL. The POSTs carry a valid CSRF token (any visitor can get one from
    the login page), so that what refuses them is the missing login, not the missing token."""
    visitor = httpx.Client(base_url=live_server, timeout=30, headers={"Referer": live_server + "/"})
    visitor.get("/login/")
    csrf = {"X-CSRFToken": visitor.cookies["csrftoken"]}
    answers = {}
    for route in every_route():
        answers["GET", route.path] = visitor.get(route.path)
        answers["POST", route.path] = visitor.post(route.path, headers=csrf, data={})
    answers["GET", "/static/admin/css/base.css"] = visitor.get("/static/admin/css/base.css")

    open_ = {key: answer.status_code for key, answer in answers.items() if not _refused(answer)}
    assert open_ == {key: status for key, (status, _) in ALLOWED.items()}
    api = [(key, answer) for key, answer in answers.items() if key[1].startswith("/api/")]
    assert api and all(answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
                       for _, answer in api), [key for key, answer in api if answer.status_code != 401]  # fmt: skip
    ui = [answer for (method, path), answer in answers.items() if method == "GET" and not path.startswith(("/api/", "/admin/"))]
    print(f"{len(answers) - len(open_)} of {len(answers)} requests ({len(answers) // 2} routes, GET and POST) refused; "
          f"{len(open_)} allow-listed; {sum(a.status_code == 302 for a in ui)} UI pages sent to the login form")  # fmt: skip


def test_every_operation_of_the_schema_refuses_requests_without_credentials(live_server, make_token):
    operations = _operations(live_server, make_token("read"))
    assert len(operations) >= 60
    for method, path, _ in operations:
        answer = httpx.request(method, live_server + path, json={})
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.json()["code"] == "not_authenticated", (method, path)
    print(f"{len(operations)} API operations refuse requests without credentials (401)")


def test_a_read_token_reads_and_is_refused_every_write_operation_of_the_schema(live_server, make_token):
    read = {"Authorization": f"Bearer {make_token('read')}"}
    operations = _operations(live_server, make_token("read"))
    writes = [(method, path) for method, path, _ in operations if method.lower() in WRITE_METHODS]
    assert len(writes) >= 35
    for method, path in writes:
        answer = httpx.request(method, live_server + path, json={}, headers=read)
        assert answer.status_code == 403 and "read-only" in answer.json()["detail"], (method, path, answer.text[:200])
    reads = [(method, path) for method, path, template in operations if method == "GET" and "{" not in template]
    unread = {path: code for _, path in reads if (code := httpx.get(live_server + path, headers=read).status_code) not in (200, 400)}
    assert not unread
    assert httpx.get(f"{live_server}/api/flow_runs/", headers=read).status_code == 200
    print(f"a read token: {len(writes)} write operations refused (403), {len(reads)} list operations read")


def _operations(live_server: str, token: str) -> list[tuple[str, str, str]]:
    """Every (METHOD, path, template) of the OpenAPI schema, the path's parameters filled with ids of the right shape."""
    schema = httpx.get(f"{live_server}/api/schema/", headers={"Authorization": f"Bearer {token}",
                                                              "Accept": "application/json"}).json()  # fmt: skip
    found = []
    for template, item in schema["paths"].items():
        for method, operation in item.items():
            path = template
            if method not in ("get", *WRITE_METHODS):
                continue
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    pattern = parameter["schema"].get("pattern", ".*")
                    value = next(v for v in (str(uuid.uuid4()), "1") if re.search(pattern, v))
                    path = path.replace("{" + parameter["name"] + "}", value)
            found.append((method.upper(), path, template))
    return found


def test_a_wrong_or_revoked_token_is_refused_with_a_message(live_server, make_token):
    raw = make_token()
    assert httpx.get(f"{live_server}/api/flows/", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    call_command("token", "revoke", raw[:12])
    refused = httpx.get(f"{live_server}/api/flows/", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 401
    assert "invalid or revoked API token" in refused.json()["detail"]
    bogus = httpx.get(f"{live_server}/api/flows/", headers={"Authorization": "Bearer rwy_nope"})
    assert bogus.status_code == 401


def test_tokens_are_stored_hashed_and_shown_once(make_token, capsys):
    from django.contrib.auth import get_user_model

    owner = f"cli-owner-{uuid.uuid4().hex[:6]}"
    get_user_model().objects.create_user(username=owner)
    call_command("token", "create", "--user", owner, "--name", "laptop", "--scope", "read")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    token = ApiToken.objects.get(user__username=owner, name="laptop")
    assert raw.startswith("rwy_") and token.scope == "read"
    stored = [str(getattr(token, f.attname)) for f in ApiToken._meta.fields]
    assert raw not in stored and token.digest != raw
    call_command("token", "ls", "--user", owner)
    listing = capsys.readouterr().out
    assert "laptop" in listing and raw not in listing and token.prefix in listing


def test_revoking_an_unknown_token_names_it(make_token):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="'no-such-token' matches no active token"):
        call_command("token", "revoke", "no-such-token")


def test_token_find_by_whole_secret_prefix_or_name(make_token):
    raw = make_token()
    by_secret = token_find(ref=raw)
    assert token_find(ref=by_secret.prefix) == by_secret
    assert token_find(ref="test", user=by_secret.user) == by_secret


# --- the live UI's websocket ---------------------------------------------------------------
def _websocket(live_server: str, *, cookie: str | None, origin: str | None) -> str:
    """Connect to /ws/live/ and ask for an unknown page: the consumer's answer, or the refusal's HTTP status."""
    url = live_server.replace("http://", "ws://") + "/ws/live/"
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else None
    try:
        with connect(url, origin=origin, additional_headers=headers, open_timeout=30) as socket:
            socket.send(json.dumps({"page": "nowhere"}))
            return json.loads(socket.recv(timeout=30))["error"]
    except InvalidStatus as refused:
        return f"HTTP {refused.response.status_code}"


def test_the_live_websocket_refuses_visitors_and_foreign_origins(live_server, make_user):
    user = make_user()
    session = log_in(live_server, user.username).cookies["sessionid"]
    own, foreign = live_server, "http://evil.example"

    assert _websocket(live_server, cookie=session, origin=own) == "unknown live page 'nowhere'; subscribe to 'runs' or 'flow_run'"
    assert _websocket(live_server, cookie=None, origin=own) == "HTTP 403"  # not logged in
    assert _websocket(live_server, cookie="not-a-session", origin=own) == "HTTP 403"
    assert _websocket(live_server, cookie=session, origin=foreign) == "HTTP 403"  # another site's page
    assert _websocket(live_server, cookie=session, origin=None) == "HTTP 403"  # no Origin: not a browser page of ours
    assert _websocket(live_server, cookie=session, origin="http://127.0.0.1.evil.example") == "HTTP 403"
