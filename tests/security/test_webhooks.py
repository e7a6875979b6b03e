"""Webhooks never reach internal addresses: a rule naming a loopback, private, link-local, metadata or
otherwise non-public host, or a name resolving to one, is refused when saved through the API; a rule
saved while its host was allowed is refused by the worker at send time once it is not; and a webhook
answering with a redirect to an internal address is not followed. RUNWAY_NOTIFICATION_ALLOWED_HOSTS
opens hosts, and only those."""
from __future__ import annotations

import os
import threading
import uuid
from http.server import ThreadingHTTPServer

import httpx
import pytest

from orchestrator.notifications.models import NotificationRule
from orchestrator.schemas import StateType
from tests.conftest import ServerProcess
from tests.notifications.conftest import (
    WebhookServer,
    _handler,
    deliveries_of,
    wait_until,
)

P, F = StateType.PENDING, StateType.FAILED
# Each is refused, however written: (target, what the refusal says)
INTERNAL = [
    ("http://127.0.0.1:9/hook", "a loopback address"),
    ("http://127.1/hook", "resolves to 127.0.0.1, a loopback address"),  # short form
    ("http://2130706433/hook", "resolves to 127.0.0.1, a loopback address"),  # 127.0.0.1 as one number
    ("http://0x7f000001/hook", "resolves to 127.0.0.1, a loopback address"),  # ... in hexadecimal
    ("http://[::1]/hook", "a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "a loopback address"),  # IPv4 inside IPv6
    ("http://localhost:9/hook", "resolves to 127.0.0.1, a loopback address"),  # a name resolving to it
    ("http://vm/hook", "resolves to 127.0.0.1, a loopback address"),  # another name in /etc/hosts
    ("http://10.0.0.5/hook", "a private address"),
    ("http://172.16.3.4/hook", "a private address"),
    ("http://192.168.1.1/hook", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
    ("http://[fe80::1]/hook", "link-local (cloud metadata)"),
    ("http://metadata.google.internal/computeMetadata/v1/", "a cloud metadata service"),
    ("http://0.0.0.0/hook", "an unspecified address"),
    ("http://100.64.0.1/hook", "non-public"),  # shared address space (carrier NAT)
    ("http://[fd00::1]/hook", "a private address"),  # IPv6 unique local
]


@pytest.fixture(scope="module")
def open_server():
    """A server of this session's database whose webhooks may reach public hosts, and 10.1.2.3 by name."""
    server = ServerProcess(RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS="true", RUNWAY_NOTIFICATION_ALLOWED_HOSTS="10.1.2.3").start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("channel", ["webhook", "slack"])
def test_rules_naming_internal_hosts_are_refused_when_saved_through_the_api(open_server, make_token, channel):
    api = httpx.Client(base_url=f"{open_server}/api/", headers={"Authorization": f"Bearer {make_token()}"}, timeout=30)
    rule = {"name": f"hook-{uuid.uuid4().hex[:6]}", "channel": channel, "states": ["Failed"],
            "flow_names": [f"nothing-{uuid.uuid4().hex[:6]}"]}  # fmt: skip
    public = api.post("notifications/", json={**rule, "target": "http://93.184.215.14/hook"})  # a public address
    listed = api.post("notifications/", json={**rule, "name": rule["name"] + "-2", "target": "http://10.1.2.3/hook"})
    try:
        assert public.status_code == listed.status_code == 201, public.text + listed.text
        for target, why in INTERNAL:
            refused = api.post("notifications/", json={**rule, "name": rule["name"] + "-x", "target": target})
            assert refused.status_code == 400 and why in refused.json()["detail"], (target, refused.text)
            changed = api.patch(f"notifications/{public.json()['id']}/", json={"target": target})
            assert changed.status_code == 400 and why in changed.json()["detail"], (target, changed.text)
        assert NotificationRule.objects.get(pk=public.json()["id"]).target == "http://93.184.215.14/hook"
        assert not NotificationRule.objects.filter(name=rule["name"] + "-x").exists()
    finally:
        NotificationRule.objects.filter(name__startswith=rule["name"]).delete()
    print(f"{channel}: {len(INTERNAL)} internal targets refused on create and on change; a public and a listed one saved")


@pytest.fixture
def worker_queue(settings_override, start_worker):
    """start(**env) -> a worker on this test's system queue, where deliveries made here go."""
    settings_override(RUNWAY_SYSTEM_QUEUE=f"{os.environ['RUNWAY_DEFAULT_QUEUE']}-system",
                      RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["127.0.0.1", "localhost", "vm"])  # saving them here  # fmt: skip

    def start(allowed: str):
        return start_worker(concurrency=1, RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS="true",
                            RUNWAY_NOTIFICATION_ALLOWED_HOSTS=allowed, RUNWAY_NOTIFICATION_TIMEOUT_SECONDS="5")  # fmt: skip

    return start


def _failed(rule) -> str:
    delivery = wait_until(lambda: [d for d in deliveries_of(rule) if d.status in ("failed", "sent")], 60,
                          "the delivery ending")[0]  # fmt: skip
    assert delivery.status == "failed", (delivery.status, delivery.response)
    return delivery.last_error


def test_a_worker_refuses_at_send_time_a_host_no_longer_allowed_and_sends_to_one_allowed(
        worker_queue, make_rule, make_run, webhook_server):  # fmt: skip
    port = webhook_server.url.rsplit(":", 1)[1]
    worker_queue(allowed="")  # nothing internal allowed on the worker
    by_address = make_rule(channel="webhook", target=f"{webhook_server.url}/by-address")
    by_name = make_rule(channel="webhook", target=f"http://vm:{port}/by-name")
    make_run(P, F)

    assert "webhook host '127.0.0.1' is 127.0.0.1, a loopback address" in _failed(by_address)
    assert "webhook host 'vm' resolves to 127.0.0.1, a loopback address" in _failed(by_name)
    assert webhook_server.requests == []


def test_a_worker_sends_to_an_allowed_host(worker_queue, make_rule, make_run, webhook_server):
    worker_queue(allowed="127.0.0.1")
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/allowed")
    make_run(P, F)
    webhook_server.wait(1, timeout=60)
    wait_until(lambda: deliveries_of(rule)[0].status == "sent", 30, "the delivery recorded as sent")


@pytest.fixture
def internal_server():
    """A second local HTTP server, which records any request that reaches it."""
    internal = WebhookServer(server=None)  # type: ignore[arg-type]
    internal.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(internal))
    threading.Thread(target=internal.server.serve_forever, daemon=True).start()
    yield internal
    internal.server.shutdown()
    internal.server.server_close()


def test_a_redirect_to_an_internal_address_is_not_followed(worker_queue, make_rule, make_run, webhook_server,
                                                           internal_server):  # fmt: skip
    """The webhook is reached by the name `localhost`, which the worker allows; it answers 302 to
    127.0.0.1 (another local server, which records any request): not followed."""
    worker_queue(allowed="localhost")
    port = webhook_server.url.rsplit(":", 1)[1]
    webhook_server.answer(302, Location=f"{internal_server.url}/stolen")
    rule = make_rule(channel="webhook", target=f"http://localhost:{port}/hook")
    make_run(P, F)

    reason = _failed(rule)
    assert f"HTTP 302: the webhook redirects to {internal_server.url}/stolen; redirects are not followed" in reason
    assert len(webhook_server.requests) == 1 and internal_server.requests == []
    assert deliveries_of(rule)[0].attempts == 1  # not retried either
