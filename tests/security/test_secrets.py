"""Secrets: stored encrypted, read by name in flows, and never shown again.

A secret's value never appears in an API response (but the write-scoped reveal
the SDK calls), a stored log line, a state's message or data, a traceback, a UI
or admin page, or a live websocket event; the database holds it encrypted only.
Checked on a real database, against the live server, with a flow whose tasks run
on a real `celery worker` and talk to the server over HTTP.
"""
from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.secrets import crypto, services
from orchestrator.secrets.crypto import SecretsKeyInvalid, SecretUndecryptable
from orchestrator.secrets.models import Secret as SecretRow
from sdk.redaction import MASK
from tests.workers.conftest import REPO, start_worker  # noqa: F401 (a fixture)

PASSWORD = "a long test password 2"


@pytest.fixture
def secret() -> tuple[str, str]:
    """A new secret's (name, value); the value is unique, so finding it anywhere is a leak."""
    name, value = f"s-{uuid.uuid4().hex[:10]}", f"sv{uuid.uuid4().hex}"
    services.secret_set(name=name, value=value)
    return name, value


def leaks(value: str, texts: list[str]) -> list[str]:
    """The texts that contain `value`, cut around it."""
    return [text[max(0, text.find(value) - 200) : text.find(value) + 200] for text in texts if value in text]


def database_hits(value: str) -> tuple[list[str], int]:
    """Every text and JSON column of every table holding `value`: (the "table.column" hits, columns scanned)."""
    from django.apps import apps
    from django.db import connection, models

    quote, hits, columns = connection.ops.quote_name, [], 0
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            for field in model._meta.concrete_fields:
                if not isinstance(field, (models.CharField, models.TextField, models.JSONField)):
                    continue
                columns += 1
                table, column = quote(model._meta.db_table), quote(field.column)
                cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE CAST({column} AS TEXT) LIKE %s", [f"%{value}%"])
                if cursor.fetchone()[0]:
                    hits.append(f"{model._meta.db_table}.{field.column}")
    return hits, columns


# --- storage and keys ------------------------------------------------------------------------
def test_a_secret_is_stored_as_a_fernet_token_and_read_back_by_name(secret):
    from django.db import connection

    name, value = secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT value_encrypted FROM secrets_secret WHERE name = %s", [name])
        (stored,) = cursor.fetchone()
    assert stored.startswith("gAAAAA") and value not in stored
    assert value.encode() not in base64.urlsafe_b64decode(stored)
    assert services.secret_value(name=name) == value
    assert database_hits(value)[0] == []


def test_a_value_under_a_lost_key_is_refused_with_a_message_naming_the_cause(secret):
    name, value = secret
    with override_settings(SECRET_KEY="another secret key"), pytest.raises(SecretUndecryptable) as lost:
        services.secret_value(name=name)
    assert f"secret {name!r} cannot be decrypted" in str(lost.value)
    assert "RUNWAY_SECRETS_KEY is unset" in str(lost.value) and "SECRET_KEY changed" in str(lost.value)
    with override_settings(RUNWAY_SECRETS_KEY=crypto.generate_key()):  # the SECRET_KEY-derived key still opens it
        assert services.secret_value(name=name) == value
    with override_settings(RUNWAY_SECRETS_KEY="not-a-fernet-key"), pytest.raises(SecretsKeyInvalid, match="generate-key"):
        services.secret_value(name=name)


def test_rotating_the_key_reencrypts_every_secret_and_the_old_key_can_then_go(secret):
    from django.conf import settings

    name, value = secret
    new, other = crypto.generate_key(), crypto.generate_key()
    derived = crypto.derived_key(settings.SECRET_KEY).decode()
    try:
        with override_settings(RUNWAY_SECRETS_KEY=new):
            assert services.secrets_reencrypt() >= 1
        with override_settings(RUNWAY_SECRETS_KEY=new, SECRET_KEY="changed"):  # the derived key is no longer needed
            assert services.secret_value(name=name) == value
        with override_settings(RUNWAY_SECRETS_KEY=other, SECRET_KEY="changed"), pytest.raises(SecretUndecryptable) as lost:
            services.secret_value(name=name)
        assert "none of the keys in RUNWAY_SECRETS_KEY" in str(lost.value)
        with override_settings(RUNWAY_SECRETS_KEY=other, SECRET_KEY="changed"), pytest.raises(SecretUndecryptable):
            services.secrets_reencrypt()  # all or nothing
        with override_settings(RUNWAY_SECRETS_KEY=new):
            assert services.secret_value(name=name) == value
    finally:  # back under the SECRET_KEY-derived key, for the other tests of the session
        with override_settings(RUNWAY_SECRETS_KEY=f"{derived},{new}"):
            services.secrets_reencrypt()
    assert services.secret_value(name=name) == value


@pytest.mark.parametrize("bad", ["My Secret", "-leading", "trailing_", "a/b", "ünïcode", "x" * 101, "", "dot.ted"])
def test_a_bad_name_is_refused_with_a_message_saying_which_names_are_allowed(bad):
    with pytest.raises(InvalidInput, match="not allowed|at most|needs a name"):
        services.secret_set(name=bad, value="v")


def test_an_empty_value_is_refused_and_a_taken_name_too_unless_overwriting(secret):
    name, _ = secret
    with pytest.raises(InvalidInput, match="is empty"):
        services.secret_set(name=name, value="")
    with pytest.raises(InvalidInput, match=f"a secret named {name!r} exists"):
        services.secret_set(name=name, value="other", overwrite=False)
    assert services.secret_set(name=name, value="other")[1] is False
    assert services.secret_value(name=name) == "other"


# --- the API -----------------------------------------------------------------------------------
def test_the_api_never_answers_a_value_and_reveals_it_to_write_tokens_only(live_server, api, make_token):
    name, value, changed = f"api-{uuid.uuid4().hex[:8]}", f"sv{uuid.uuid4().hex}", f"sv{uuid.uuid4().hex}"
    read = httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {make_token('read')}"})
    answers: list[httpx.Response] = []

    def call(client: httpx.Client, method: str, path: str, status: int, **kwargs) -> httpx.Response:
        response = client.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        answers.append(response)
        return response

    created = call(api, "POST", "secrets/", 201, json={"name": name, "value": value}).json()
    assert set(created) == {"name", "created", "updated"} and created["name"] == name
    assert "exists" in call(api, "POST", "secrets/", 400, json={"name": name, "value": "x"}).json()["detail"]
    assert "not allowed" in call(api, "POST", "secrets/", 400, json={"name": "Bad Name", "value": value}).json()["detail"]
    assert call(api, "POST", "secrets/", 400, json={"name": "empty", "value": ""}).json()["fields"]["value"]
    assert "unknown field" in call(api, "POST", "secrets/", 400, json={"name": "x", "value": value, "note": 1}).text
    listed = [row["name"] for row in call(api, "GET", "secrets/", 200, params={"limit": 500}).json()["results"]]
    assert name in listed
    assert call(read, "GET", f"secrets/{name}/", 200).json()["name"] == name
    assert call(api, "PUT", f"secrets/{name}/", 200, json={"value": changed}).json()["name"] == name
    assert call(api, "PUT", f"secrets/{name}-2/", 201, json={"value": value}).json()["name"] == f"{name}-2"
    missing = call(api, "GET", "secrets/no-such-secret/", 404).json()["detail"]
    assert "no secret named 'no-such-secret'" in missing and "secret set no-such-secret" in missing

    refused = call(read, "POST", f"secrets/{name}/reveal/", 403).json()
    assert "read-only API token cannot read secret values" in refused["detail"]
    for method, path, body in (("PUT", f"secrets/{name}/", {"value": "x"}), ("DELETE", f"secrets/{name}/", None),
                               ("POST", "secrets/", {"name": "by-reader", "value": "x"})):  # fmt: skip
        call(read, method, path, 403, json=body)
    assert httpx.post(f"{live_server}/api/secrets/{name}/reveal/").status_code == 401
    call(api, "POST", "secrets/no-such-secret/reveal/", 404)
    call(api, "POST", "secrets/Bad%20Name/reveal/", 400)
    call(api, "PATCH", f"secrets/{name}/", 405, json={"value": "x"})

    revealed = api.post(f"secrets/{name}/reveal/")
    assert revealed.status_code == 200 and revealed.json() == {"name": name, "value": changed}
    assert revealed.headers["Cache-Control"] == "no-store"

    call(api, "DELETE", f"secrets/{name}-2/", 204)
    call(api, "GET", f"secrets/{name}-2/", 404)
    schema = call(read, "GET", "schema/", 200, headers={"Accept": "application/json"}).json()
    reveal = schema["paths"]["/api/secrets/{name}/reveal/"]["post"]
    assert {"200", "403", "422"} <= set(reveal["responses"])
    assert "value" not in schema["components"]["schemas"]["SecretOut"]["properties"]
    assert leaks(value, [a.text for a in answers]) == [] and leaks(changed, [a.text for a in answers]) == []
    assert len(answers) >= 20
    read.close()


def test_the_sdk_over_http_reads_with_a_write_token_and_names_what_is_wrong(live_server, make_token, secret):
    from sdk.client.http import HttpClient
    from sdk.exceptions import ApiRequestRefused

    name, value = secret
    writer = HttpClient(f"{live_server}/api", make_token("write"), retry_seconds=5)
    reader = HttpClient(f"{live_server}/api", make_token("read"), retry_seconds=5)
    try:
        assert writer.read_secret(name) == value
        with pytest.raises(ApiRequestRefused, match="read-only API token cannot read secret values"):
            reader.read_secret(name)
        with pytest.raises(ObjectNotFound, match="no secret named 'never-set'"):
            writer.read_secret("never-set")
        writer.set_secret(f"{name}-http", "over http")
        assert services.secret_value(name=f"{name}-http") == "over http"
        with pytest.raises(InvalidInput, match="exists"):
            writer.set_secret(f"{name}-http", "again", overwrite=False)
    finally:
        writer.close()
        reader.close()


# --- the CLI -----------------------------------------------------------------------------------
def test_the_cli_sets_lists_and_deletes_secrets_without_printing_values(capsys, monkeypatch):
    name, value = f"cli-{uuid.uuid4().hex[:8]}", f"sv{uuid.uuid4().hex}"
    call_command("secret", "set", name, "--value", value)
    assert f"Created secret {name!r}" in capsys.readouterr().out
    call_command("secret", "set", name, stdin=io.StringIO(f"{value}-piped\n"))
    assert f"Updated secret {name!r}" in capsys.readouterr().out
    assert services.secret_value(name=name) == f"{value}-piped"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = iter([f"{value}-typed", f"{value}-typed", "one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    call_command("secret", "set", name, stdin=Terminal())
    assert services.secret_value(name=name) == f"{value}-typed"
    with pytest.raises(CommandError, match="the two values differ"):
        call_command("secret", "set", name, stdin=Terminal())
    capsys.readouterr()
    call_command("secret", "ls")
    call_command("secret", "ls", "--json")
    listing = capsys.readouterr().out
    assert name in listing and value not in listing
    assert any(row["name"] == name for row in json.loads(listing[listing.index("["):]))
    with pytest.raises(CommandError, match="not allowed: use lowercase letters"):
        call_command("secret", "set", "Not Valid", "--value", "x")
    with pytest.raises(CommandError, match="no secret named 'no-such-secret'"):
        call_command("secret", "delete", "no-such-secret")
    call_command("secret", "delete", name)
    assert f"Deleted secret {name!r}" in capsys.readouterr().out
    assert not SecretRow.objects.filter(name=name).exists()


@pytest.mark.parametrize("args", [["--help"], ["set", "--help"], ["ls", "--help"], ["delete", "--help"],
                                  ["reencrypt", "--help"], ["generate-key", "--help"]])  # fmt: skip
def test_every_level_of_the_secret_command_has_help(args, capsys):
    with pytest.raises(SystemExit) as done:
        call_command("secret", *args)
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "usage:" in text
    if args == ["--help"]:
        assert all(verb in text for verb in ("set", "ls", "delete", "reencrypt", "generate-key"))
    if args[0] == "set":
        assert "--value" in text and "stdin" in text


# --- the SDK, in process -----------------------------------------------------------------------
def test_importing_sdk_secrets_does_not_touch_the_database():
    from tests.sdk.conftest import run_script

    done = run_script("import sys, sdk.secrets; print('django.db.models' in sys.modules)")
    assert done.stdout.strip() == "False", done.stderr


def test_the_sdk_loads_saves_and_names_unknown_or_bad_secrets(secret):
    from sdk.secrets import Secret, SecretNotFound, get_secret

    name, value = secret
    loaded = Secret.load(name)
    assert loaded.get() == value and get_secret(name) == value
    assert value not in repr(loaded) and value not in str(loaded) and MASK in repr(loaded)
    with pytest.raises(SecretNotFound, match="no secret named 'never-set'; set it with") as unknown:
        Secret.load("never-set")
    assert isinstance(unknown.value, ValueError) and isinstance(unknown.value, LookupError)
    with pytest.raises(InvalidInput, match="not allowed"):
        get_secret("Never Set")
    Secret(value="saved from the sdk").save(f"{name}-saved")
    assert Secret.load(f"{name}-saved").get() == "saved from the sdk"
    with pytest.raises(InvalidInput, match="exists"):
        Secret(value="again").save(f"{name}-saved")
    Secret(value="again").save(f"{name}-saved", overwrite=True)
    assert get_secret(f"{name}-saved") == "again"


def test_a_flow_in_process_stores_no_value_in_logs_states_results_or_parameters(secret, capsys):
    from orchestrator.runs.models import FlowRun, Log, TaskRunState
    from sdk.logging.handlers import flush_logs
    from tests.security.secret_flows import in_process_pipeline

    name, _ = secret
    tail = uuid.uuid4().hex  # every copy of the value, however escaped, holds this
    value = f"it's a \"quoted\" \\ back\nslashed ünï {tail}"  # repr and JSON write it escaped
    services.secret_set(name=name, value=value)
    assert in_process_pipeline(name) == value  # the result is usable: kept in the file store
    flush_logs()
    run = FlowRun.objects.filter(flow__name="in-process-pipeline").latest("created")
    lines = [line.message for line in Log.objects.filter(flow_run__in=[run, *FlowRun.objects.filter(parent_flow_run=run)])]
    assert leaks(tail, lines) == [] and leaks(tail, [capsys.readouterr().err]) == []
    assert database_hits(tail)[0] == []
    assert sum(MASK in line for line in lines) >= 4  # logged, logged as repr, printed, the failure
    failed = TaskRunState.objects.get(task_run__flow_run=run, type="FAILED")
    assert MASK in failed.message and MASK in failed.result["traceback"] and "key" not in failed.result
    assert run.state.result["type"] == "file"  # the returned value is in the file store, not the row
    child = FlowRun.objects.get(parent_flow_run=run)
    assert child.parameters == {"token": MASK} and child.name == f"called-with-{MASK}"


def test_a_run_crashed_by_an_exception_holding_a_value_stores_it_masked(secret):
    from orchestrator.runs.models import FlowRun, Log, TaskRunState
    from sdk.logging.handlers import flush_logs
    from tests.security.secret_flows import SecretCrash, crashing_flow

    name, value = secret
    with pytest.raises(SecretCrash):
        crashing_flow(name)
    flush_logs()
    run = FlowRun.objects.filter(flow__name="crashing-flow").latest("created")
    crashed = TaskRunState.objects.get(task_run__flow_run=run, type="CRASHED")
    assert crashed.message == f"Crashed: execution was interrupted: SecretCrash: crashed holding {MASK}"
    assert run.state.type == "CRASHED" and MASK in run.state.message
    assert leaks(value, [line.message for line in Log.objects.filter(flow_run=run)]) == []
    assert database_hits(value)[0] == []


# --- a flow on a Celery worker, over HTTP, watched live ----------------------------------------
class LiveSocket:
    """A small websocket client (RFC 6455: text frames, fragments, ping, close) for the live UI channel."""

    def __init__(self, base_url: str, session: str) -> None:
        where = urlsplit(base_url)
        self.sock = socket.create_connection((where.hostname, where.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws/live/ HTTP/1.1\r\nHost: {where.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Origin: {base_url}\r\nCookie: sessionid={session}\r\n\r\n").encode())  # fmt: skip
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"the server closed the connection: {head!r}")
            head += chunk
        head, _, self.buffer = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"no websocket: {head!r}")
        self.messages: list[str] = []
        self._parts: list[bytes] = []

    def send_json(self, data: object) -> None:
        payload, mask = json.dumps(data).encode(), os.urandom(4)
        size = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big"))
        self.sock.sendall(header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload)))

    def receive(self, timeout: float) -> str | None:
        """The next text message, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frame()
            if frame is not None:
                final, opcode, payload = frame
                if opcode == 0x9:  # ping
                    self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                elif opcode == 0x8:
                    raise ConnectionError(f"the server closed the websocket: {payload!r}")
                elif opcode in (0x0, 0x1):
                    self._parts.append(payload)
                    if final:
                        text = b"".join(self._parts).decode()
                        self._parts.clear()
                        self.messages.append(text)
                        return text
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("the server closed the websocket")
            self.buffer += chunk

    def _frame(self) -> tuple[bool, int, bytes] | None:
        data = self.buffer
        if len(data) < 2:
            return None
        size, start = data[1] & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(data[2:10], "big"), 10
        if len(data) < start + size:
            return None
        self.buffer = data[start + size :]
        return bool(data[0] & 0x80), data[0] & 0x0F, data[start : start + size]

    def close(self) -> None:
        self.sock.close()


def _logged_in(live_server: str) -> httpx.Client:
    """A browser-like session of a staff user (UI pages, admin, websocket)."""
    from django.contrib.auth import get_user_model

    username = f"staff-{uuid.uuid4().hex[:8]}"
    get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True, is_superuser=True)
    browser = httpx.Client(base_url=live_server, timeout=60, follow_redirects=False)
    browser.get("/admin/login/")
    login = browser.post("/admin/login/?next=/admin/", data={"username": username, "password": PASSWORD,
                                                              "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    assert login.status_code == 302, login.text[:500]
    return browser


def _pages(client: httpx.Client, path: str, params: dict | None = None) -> list[httpx.Response]:
    """Every page of a list (following `next`), or the one answer of anything else."""
    answers, url = [], path
    while url:
        answer = client.get(url, params=params)
        assert answer.status_code == 200, (url, answer.text[:500])
        answers.append(answer)
        body = answer.json()
        url, params = (body.get("next"), None) if isinstance(body, dict) else (None, None)
    return answers


def _api_answers(api: httpx.Client, run_id: str, name: str) -> list[httpx.Response]:
    """What the API answers about the run, its subflow, task runs, states and logs, and the secret."""
    answers = _pages(api, f"flow_runs/{run_id}/") + _pages(api, f"flow_runs/{run_id}/states/")
    answers += _pages(api, "flow_runs/", {"limit": 500}) + _pages(api, "flow_runs/counts/")
    children = _pages(api, "flow_runs/", {"parent_flow_run": run_id})
    answers += children
    for child in children[0].json()["results"]:
        answers += _pages(api, f"flow_runs/{child['id']}/") + _pages(api, f"flow_runs/{child['id']}/states/")
    task_runs = _pages(api, "task_runs/", {"flow_run": run_id, "limit": 100})
    answers += task_runs + _pages(api, "task_runs/final_states/", {"flow_run": run_id})
    ids = [task_run["id"] for task_run in task_runs[0].json()["results"]]
    answers += _pages(api, "task_runs/current_states/", {"ids": ",".join(ids)})
    for task_run_id in ids:
        answers += _pages(api, f"task_runs/{task_run_id}/") + _pages(api, f"task_runs/{task_run_id}/states/")
        answers += _pages(api, "logs/", {"task_run": task_run_id, "limit": 500})
    answers += _pages(api, "logs/", {"flow_run": run_id, "limit": 20})  # several pages
    answers += _pages(api, "logs/", {"flow_run": run_id, "search": MASK})
    answers += _pages(api, "secrets/") + _pages(api, f"secrets/{name}/") + _pages(api, "flows/")
    return answers


def _ui_answers(browser: httpx.Client, run_id: str, task_run_ids: list[str], secret_pk: int) -> list[httpx.Response]:
    """The UI's pages of the run and its task runs, the live fallback, and the admin's secret pages."""
    paths = ["/", "/flow-runs/", f"/runs/{run_id}/", f"/task-runs/?flow_run={run_id}", "/flows/",
             f"/live/?page=flow_run&id={run_id}&log_after=0&since=2000-01-01T00:00:00Z", "/live/?page=runs&since=2000-01-01T00:00:00Z",
             "/admin/secrets/secret/", f"/admin/secrets/secret/{secret_pk}/change/", "/admin/secrets/secret/add/",
             *(f"/task-runs/{task_run_id}/" for task_run_id in task_run_ids)]  # fmt: skip
    answers = [browser.get(path) for path in paths]
    for path, answer in zip(paths, answers):
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return answers


@pytest.mark.slow
def test_a_secret_used_on_a_celery_worker_reaches_no_api_answer_log_state_page_or_websocket_event(
    live_server, api, make_token, start_worker, secret, tmp_path  # noqa: F811 (start_worker is a fixture)
):  # fmt: skip
    from orchestrator.runs.models import FlowRun, FlowRunState, Log, TaskRun, TaskRunState

    name, value = secret
    run_name, gate = f"leaky-{uuid.uuid4().hex[:8]}", tmp_path / "gate"
    over_http = {"RUNWAY_API_URL": f"{live_server}/api", "RUNWAY_API_KEY": make_token("write")}
    worker = start_worker(**over_http)
    browser = _logged_in(live_server)
    code = ("import sys; from tests.security.secret_flows import leaky_pipeline; "
            "print(leaky_pipeline(*sys.argv[1:], return_state=True))")  # fmt: skip
    out_path, err_path = tmp_path / "flow.out", tmp_path / "flow.err"  # files: a full pipe would block the flow
    with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
        flow_process = subprocess.Popen([sys.executable, "-c", code, name, str(gate), run_name], cwd=REPO,
                                        stdout=out_file, stderr=err_file, env={**os.environ, **over_http})  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not FlowRun.objects.filter(name=run_name).exists():
            assert time.monotonic() < deadline and flow_process.poll() is None, err_path.read_text()[-3000:]
            time.sleep(0.1)
        run = FlowRun.objects.get(name=run_name)
        sockets = [LiveSocket(live_server, browser.cookies["sessionid"]) for _ in range(2)]
        sockets[0].send_json({"page": "flow_run", "id": str(run.pk), "log_after": 0, "query": ""})
        sockets[1].send_json({"page": "runs", "query": ""})
        assert api.put(f"secrets/{name}-live/", json={"value": value}).status_code == 201  # saved while watched
        gate.touch()  # the flow starts its work only now that the pages watch it
        quiet_since = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # read until the run ended and the pages were quiet for 3 s
            got = [sock.receive(timeout=0.25) for sock in sockets]
            if flow_process.poll() is None or any(got):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 3:
                break
        flow_process.wait(timeout=60)
    finally:
        if flow_process.poll() is None:
            flow_process.kill()
    for sock in sockets:
        sock.close()
    out, err = out_path.read_text(), err_path.read_text()
    assert "Failed" in out and "PermissionError" in out and MASK in out, (out, err[-3000:])

    run.refresh_from_db()
    flow_runs = [run, *FlowRun.objects.filter(parent_flow_run=run)]
    task_runs = list(TaskRun.objects.filter(flow_run=run))
    lines = [line.message for line in Log.objects.filter(flow_run__in=flow_runs)]
    states = [*FlowRunState.objects.filter(flow_run__in=flow_runs), *TaskRunState.objects.filter(task_run__in=task_runs)]
    state_texts = [f"{state.message} {json.dumps(state.result)} {json.dumps(state.details)}" for state in states]
    tracebacks = [text for text in [*lines, *(json.dumps(s.result) for s in states)] if "Traceback" in text]
    events = [message for sock in sockets for message in sock.messages]
    api_answers = _api_answers(api, str(run.pk), name)
    pages = _ui_answers(browser, str(run.pk), [str(t.pk) for t in task_runs], SecretRow.objects.get(name=name).pk)
    hits, columns = database_hits(value)
    print(f"\nvalue absent from {len(api_answers)} API answers, {len(pages)} UI and admin pages, {len(lines)} log rows, "
          f"{len(states)} state rows, {len(tracebacks)} tracebacks, {len(events)} websocket events, "
          f"{columns} text columns of the database; the worker's and the flow's output")  # fmt: skip

    assert len(task_runs) == 4 and {t.state_name for t in task_runs} == {"Completed", "Failed"}
    assert leaks(value, lines) == [] and leaks(value, state_texts) == [] and leaks(value, tracebacks) == []
    assert leaks(value, [answer.text for answer in api_answers]) == []
    assert leaks(value, [page.text for page in pages]) == []
    assert leaks(value, events) == [] and hits == []
    assert not any(f"{name}-live" in event for event in events)  # saving a secret sends no live event
    assert leaks(value, [worker.output(), out, err]) == []
    # ... and each way of leaking it was tried, and masked:
    for expected in (f"the token is {MASK}", f"as repr '{MASK}'", f"'token': '{MASK}'", f"while sending {MASK}",
                     f"printing the token: {MASK}", f"the flow has the token too: {MASK}", f"the flow prints {MASK}",
                     f"PermissionError: the server refused token {MASK}"):  # fmt: skip
        assert any(expected in line for line in lines), expected
    assert f"Secret(name={name!r}, value='{MASK}')" in "\n".join(lines)
    assert len(tracebacks) >= 4 and all(MASK in text for text in tracebacks if "refused token" in text)
    assert run.state.type == "FAILED" and MASK in run.state.message
    assert FlowRun.objects.get(parent_flow_run=run).parameters == {"token": MASK}
    returned = TaskRun.objects.get(flow_run=run, name__startswith="returns_it")
    assert returned.state.result["type"] == "file"
    assert any(MASK in event for event in events) and len(events) >= 2
    assert any(MASK in answer.text for answer in api_answers) and any(MASK in page.text for page in pages)
    assert MASK in worker.output() and MASK in err
