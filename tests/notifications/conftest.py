"""Notification fixtures: a local HTTP server taking webhooks, a local SMTP sink, rules cleaned up after
each test, and flow runs of flows of their own (so that one test's rules never see another's runs)."""
from __future__ import annotations

import json
import socketserver
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.notifications import services, triggers
from orchestrator.notifications.models import NotificationDelivery, NotificationRule
from orchestrator.runs.services import flow_get_or_create, flow_run_create, flow_run_set_state
from orchestrator.schemas import State, StateType
from tests.workers.conftest import start_worker  # noqa: F401  (a fixture)


def wait_until(predicate: Callable[[], Any], timeout: float = 30, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


# --- a webhook receiver ----------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    """http.server in a thread: records each POST; answers the statuses in `answers` in turn, then 200."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, *statuses: int, **headers: str) -> None:
        self.answers.extend((status, headers) for status in statuses)

    def wait(self, count: int = 1, timeout: float = 30) -> list[Received]:
        wait_until(lambda: len(self.requests) >= count, timeout, f"{count} webhook request(s)")
        return self.requests


def _handler(owner: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            owner.requests.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
            status, headers = owner.answers.pop(0) if owner.answers else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            text = b"ok" if status < 300 else b"receiver says no"
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def webhook_server():
    holder = WebhookServer(server=None)  # type: ignore[arg-type]
    holder.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(holder))
    thread = threading.Thread(target=holder.server.serve_forever, daemon=True)
    thread.start()
    yield holder
    holder.server.shutdown()
    holder.server.server_close()


# --- an SMTP sink ----------------------------------------------------------------------------
@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: str


class SmtpSink(socketserver.ThreadingTCPServer):
    """The smallest SMTP server smtplib talks to: it records each message; `refuse` names recipients it refuses."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.messages: list[Mail] = []
        self.refuse: set[str] = set()
        super().__init__(("127.0.0.1", 0), _SmtpSession)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def wait(self, count: int = 1, timeout: float = 30) -> list[Mail]:
        wait_until(lambda: len(self.messages) >= count, timeout, f"{count} email(s)")
        return self.messages


class _SmtpSession(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self._say("220 sink ESMTP ready")
        sender, recipients = "", []
        while line := self.rfile.readline().decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 sink")
            elif verb == "MAIL":
                sender, recipients = line.split(":", 1)[1].strip(" <>"), []
                self._say("250 OK")
            elif verb == "RCPT":
                address = line.split(":", 1)[1].strip(" <>")
                if address in self.server.refuse:
                    self._say("550 no such mailbox")
                else:
                    recipients.append(address)
                    self._say("250 OK")
            elif verb == "DATA":
                self._say("354 end with <CRLF>.<CRLF>")
                self.server.messages.append(Mail(sender, recipients, self._read_data()))
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:  # RSET, NOOP
                self._say("250 OK")

    def _read_data(self) -> str:
        lines = []
        while (line := self.rfile.readline().decode()) not in (".\r\n", ".\n", ""):
            lines.append(line[1:] if line.startswith("..") else line)
        return "".join(lines)

    def _say(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")


@pytest.fixture
def smtp_sink(settings_override):
    sink = SmtpSink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    settings_override(EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port)
    yield sink
    sink.shutdown()
    sink.server_close()


# --- settings, rules and runs ----------------------------------------------------------------
@pytest.fixture
def settings_override(monkeypatch):
    """settings_override(NAME=value, ...): Django settings changed for this test only."""
    from django.conf import settings

    def override(**values: Any) -> None:
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value)

    return override


@pytest.fixture(scope="session", autouse=True)
def session_system_queue_emptied_at_the_end():
    """Deliveries made in this process go to the session's system queue, which no worker of these tests
    consumes (each test's workers have a queue of their own): its messages are removed from the broker at the end."""
    yield
    from django.conf import settings

    from orchestrator.notifications.dispatch import _app

    with _app().connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.RUNWAY_SYSTEM_QUEUE)


@pytest.fixture
def unserved_queue(settings_override):
    """Messages go to a queue no worker consumes (as if lost) for this test; emptied afterwards."""
    from orchestrator.notifications.dispatch import _app

    queue = f"nobody-listens-{uuid.uuid4().hex[:6]}"
    settings_override(RUNWAY_SYSTEM_QUEUE=queue)
    yield queue
    with _app().connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


@pytest.fixture(autouse=True)
def public_hosts_for_saving(settings_override):
    """Rules of these tests may name public hosts (hooks.example.test, which resolves nowhere); the session
    keeps public hosts closed (tests/conftest.py), so that workers never send beyond this machine."""
    settings_override(RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS=True)


@pytest.fixture
def local_webhooks(settings_override):
    """Webhooks may reach 127.0.0.1 (the test's receiver); retries come quickly."""
    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["127.0.0.1"], RUNWAY_NOTIFICATION_BACKOFF_SECONDS=0.2,
                      RUNWAY_NOTIFICATION_BACKOFF_MAX_SECONDS=1.0, RUNWAY_NOTIFICATION_TIMEOUT_SECONDS=5.0)  # fmt: skip


@pytest.fixture
def flow_name() -> str:
    return f"notify-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_rule(flow_name):
    """make_rule(channel=..., target=..., states=[...], **fields): a rule watching this test's flow by default."""
    made: list[int] = []

    def make(**fields: Any):
        fields = {"name": f"rule-{uuid.uuid4().hex[:8]}", "states": ["Failed"], "flow_names": [flow_name], **fields}
        rule = services.notification_rule_create(**fields)
        made.append(rule.pk)
        return rule

    yield make
    NotificationRule.objects.filter(pk__in=made).delete()  # a test may have deleted some already
    triggers.forget_rules()


@pytest.fixture
def make_run(flow_name):
    """make_run(*state types, name=..., tags=[...], flow=flow_name): a flow run driven (with force) through them."""

    def make(*types: StateType | State, name: str | None = None, tags: list[str] | None = None, flow: str | None = None):
        found = flow_get_or_create(name=flow or flow_name)
        states = [t if isinstance(t, State) else State(t) for t in types]
        run, _ = flow_run_create(flow_id=found.id, name=name or f"run-{uuid.uuid4().hex[:6]}", state=states[0],
                                 tags=tags or [])  # fmt: skip
        for state in states[1:]:
            flow_run_set_state(flow_run_id=run.id, state=state, force=True)
        return run

    return make


def deliveries_of(rule) -> list[NotificationDelivery]:
    return list(NotificationDelivery.objects.filter(rule=rule).order_by("created"))
