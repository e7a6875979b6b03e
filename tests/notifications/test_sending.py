"""Sending a delivery, as a worker does (the service the Celery task calls), to a local HTTP server and a
local SMTP sink: message formats, signatures, the allow-list at send time, retries, the record."""
from __future__ import annotations

import hashlib
import hmac
import shutil
import socketserver
import ssl
import subprocess
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator.notifications import services
from orchestrator.notifications.models import NotificationDelivery
from orchestrator.notifications.services import notification_delivery_attempt as attempt
from orchestrator.schemas import State, StateType
from tests.notifications.conftest import deliveries_of

P, R, F = StateType.PENDING, StateType.RUNNING, StateType.FAILED


def _failed_run(make_run, **kwargs):
    return make_run(P, R, State(F, message="ValueError: the input was empty"), **kwargs)


def _only(rule) -> NotificationDelivery:
    [delivery] = deliveries_of(rule)
    return delivery


def test_a_webhook_gets_the_run_the_state_a_link_and_a_verifiable_signature(make_rule, make_run, webhook_server,
                                                                           local_webhooks, settings_override, flow_name):  # fmt: skip
    settings_override(RUNWAY_UI_URL="https://runway.example.test/")
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hooks/runway?team=data", secret="s3cret")
    run = _failed_run(make_run, name="brave-otter", tags=["etl"])
    delivery = _only(rule)

    assert attempt(delivery_id=delivery.pk) == "sent"
    [request] = webhook_server.wait()
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.path == "/hooks/runway?team=data"
    assert request.headers["X-Runway-Signature"] == expected and request.headers["X-Runway-Delivery"] == str(delivery.pk)
    assert request.headers["Host"] == webhook_server.url.removeprefix("http://")
    body = request.json()
    url = f"https://runway.example.test/runs/{run.id}/"
    assert body["flow_run"] == {"id": str(run.id), "name": "brave-otter", "flow_name": flow_name, "deployment": None,
                                "tags": ["etl"], "url": url}  # fmt: skip
    assert (body["state"]["type"], body["state"]["name"], body["state"]["message"]) == ("FAILED", "Failed", "ValueError: the input was empty")
    assert body["title"] == f"Flow run brave-otter of {flow_name}: Failed"
    assert url in body["text"] and "ValueError: the input was empty" in body["body"] and body["test"] is False
    done = NotificationDelivery.objects.get(pk=delivery.pk)
    assert (done.status, done.attempts, done.response, done.last_error) == ("sent", 1, "HTTP 200", "")
    assert done.sent_at is not None


def test_slack_gets_its_incoming_webhook_format_from_the_rules_templates(make_rule, make_run, webhook_server, local_webhooks):
    rule = make_rule(channel="slack", target=f"{webhook_server.url}/services/T0/B0/xyz",
                     title_template=":red_circle: {flow_name}/{flow_run_name} is {state_name}",
                     body_template="{state_message} <{flow_run_url}|open the run> {{not a placeholder}}")  # fmt: skip
    run = _failed_run(make_run, name="calm-heron")
    assert attempt(delivery_id=_only(rule).pk) == "sent"

    [request] = webhook_server.wait()
    assert "X-Runway-Signature" not in request.headers
    assert request.json() == {"text": f":red_circle: {rule.flow_names[0]}/calm-heron is Failed\nValueError: the input was "
                                      f"empty <http://127.0.0.1:8000/runs/{run.id}/|open the run> {{not a placeholder}}"}  # fmt: skip


def test_an_email_goes_through_djangos_backend_to_the_smtp_server(make_rule, make_run, smtp_sink, flow_name):
    rule = make_rule(channel="email", target="oncall@example.com, data-team@example.com")
    _failed_run(make_run, name="quiet-lynx")
    delivery = _only(rule)
    assert attempt(delivery_id=delivery.pk) == "sent"

    [mail] = smtp_sink.wait()
    assert mail.recipients == ["oncall@example.com", "data-team@example.com"] and mail.sender == "runway@localhost"
    assert f"Subject: Flow run quiet-lynx of {flow_name}: Failed" in mail.data
    assert f"X-Runway-Delivery: {delivery.pk}" in mail.data and "ValueError: the input was empty" in mail.data
    assert NotificationDelivery.objects.get(pk=delivery.pk).response == "email accepted for oncall@example.com, data-team@example.com"


def test_a_refused_recipient_fails_the_email_at_once_and_says_why(make_rule, make_run, smtp_sink):
    smtp_sink.refuse.add("gone@example.com")
    rule = make_rule(channel="email", target="gone@example.com")
    _failed_run(make_run)
    outcome = attempt(delivery_id=_only(rule).pk)
    assert outcome.startswith("failed: the mail server refused the message") and "550" in outcome
    assert _only(rule).status == "failed" and _only(rule).attempts == 1


received: list[dict] = []


def remember(message: dict) -> str:
    """A callable channel's target (tests.notifications.test_sending:remember)."""
    received.append(message)
    return "noted"


@pytest.fixture
def test_callables(settings_override):
    """Callable rules may name this package's functions (RUNWAY_NOTIFICATION_CALLABLES)."""
    settings_override(RUNWAY_NOTIFICATION_CALLABLES=["tests.notifications"])


def test_a_callable_is_imported_and_called_with_the_message(make_rule, make_run, test_callables):
    rule = make_rule(channel="callable", target="tests.notifications.test_sending:remember")
    run = _failed_run(make_run)
    assert attempt(delivery_id=_only(rule).pk) == "sent"
    assert received[-1]["flow_run"]["id"] == str(run.id) and received[-1]["state"]["name"] == "Failed"
    assert _only(rule).response == "tests.notifications.test_sending:remember returned 'noted'"


def test_a_callable_that_cannot_be_imported_fails_without_retrying(make_rule, make_run, test_callables):
    rule = make_rule(channel="callable", target="tests.notifications.nowhere:notify")
    _failed_run(make_run)
    assert attempt(delivery_id=_only(rule).pk).startswith("failed: cannot import 'tests.notifications.nowhere' on this worker")


def test_a_callable_no_longer_allowed_is_not_called(make_rule, make_run, test_callables, settings_override):
    rule = make_rule(channel="callable", target="tests.notifications.test_sending:remember")
    _failed_run(make_run)
    settings_override(RUNWAY_NOTIFICATION_CALLABLES=["alerts"])  # the list changed after the rule was saved
    calls = len(received)

    outcome = attempt(delivery_id=_only(rule).pk)

    assert outcome.startswith("failed: tests.notifications.test_sending:remember is not in a module "
                              "RUNWAY_NOTIFICATION_CALLABLES allows (alerts)")  # fmt: skip
    assert len(received) == calls and _only(rule).status == "failed"


def test_the_allow_list_is_checked_again_at_send_time(make_rule, make_run, webhook_server, local_webhooks, settings_override):
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hook")
    _failed_run(make_run)
    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=[])  # the list changed after the rule was saved

    outcome = attempt(delivery_id=_only(rule).pk)
    assert "webhook host '127.0.0.1' is 127.0.0.1, a loopback address" in outcome
    assert _only(rule).status == "failed" and webhook_server.requests == []


def test_a_name_resolving_to_an_internal_address_is_refused_at_send_time(make_rule, make_run, webhook_server,
                                                                        local_webhooks, settings_override):  # fmt: skip
    port = webhook_server.url.rsplit(":", 1)[1]
    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["localhost"])
    rule = make_rule(channel="webhook", target=f"http://localhost:{port}/hook")
    _failed_run(make_run)
    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["127.0.0.2"])  # the address is not listed, only the name was

    assert "webhook host 'localhost' resolves to 127.0.0.1, a loopback address" in attempt(delivery_id=_only(rule).pk)
    assert webhook_server.requests == []


def test_redirects_are_not_followed(make_rule, make_run, webhook_server, local_webhooks):
    webhook_server.answer(302, Location="http://169.254.169.254/latest/meta-data/")
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hook")
    _failed_run(make_run)
    outcome = attempt(delivery_id=_only(rule).pk)
    assert "HTTP 302: the webhook redirects to http://169.254.169.254/latest/meta-data/; redirects are not followed" in outcome
    assert len(webhook_server.requests) == 1 and _only(rule).status == "failed"


def test_failures_are_retried_with_a_doubling_backoff_then_recorded_as_failed(make_rule, make_run, webhook_server,
                                                                             local_webhooks, settings_override):  # fmt: skip
    settings_override(RUNWAY_NOTIFICATION_MAX_ATTEMPTS=3, RUNWAY_NOTIFICATION_BACKOFF_SECONDS=0.3)
    webhook_server.answer(503, 500, 502)
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hook")
    _failed_run(make_run)
    delivery = _only(rule)

    first = attempt(delivery_id=delivery.pk)
    assert first.startswith("retry in 0.3 s: HTTP 503 Service Unavailable: receiver says no")
    waiting = _only(rule)
    assert (waiting.status, waiting.attempts, waiting.last_error) == ("pending", 1, "HTTP 503 Service Unavailable: receiver says no")
    assert attempt(delivery_id=delivery.pk).startswith("not due yet: sent again for 0.")  # too early: the backoff holds
    assert len(webhook_server.requests) == 1
    time.sleep(0.3)
    assert attempt(delivery_id=delivery.pk).startswith("retry in 0.6 s: HTTP 500")
    assert 0.55 < (_only(rule).next_attempt_at - timezone.now()).total_seconds() + 0.1 < 0.75
    time.sleep(0.6)
    assert attempt(delivery_id=delivery.pk) == "failed: HTTP 502 Bad Gateway: receiver says no (gave up after 3 attempts)"
    done = _only(rule)
    assert (done.status, done.attempts, done.sent_at) == ("failed", 3, None)
    assert done.last_error == "HTTP 502 Bad Gateway: receiver says no (gave up after 3 attempts)"


def test_a_client_error_is_not_retried(make_rule, make_run, webhook_server, local_webhooks):
    webhook_server.answer(404)
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/gone")
    _failed_run(make_run)
    assert attempt(delivery_id=_only(rule).pk) == "failed: HTTP 404 Not Found: receiver says no"


def test_a_refused_connection_is_retried(make_rule, make_run, local_webhooks):
    from tests.conftest import free_port

    rule = make_rule(channel="webhook", target=f"http://127.0.0.1:{free_port()}/nobody-listens")
    _failed_run(make_run)
    outcome = attempt(delivery_id=_only(rule).pk)
    assert outcome.startswith("retry in 0.2 s: POST to 127.0.0.1 failed: ConnectError")


def test_a_delivery_is_sent_once_however_often_it_is_attempted(make_rule, make_run, webhook_server, local_webhooks):
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hook")
    _failed_run(make_run)
    delivery = _only(rule)
    outcomes = [attempt(delivery_id=delivery.pk) for _ in range(3)]
    assert outcomes == ["sent", "not sent again: it is sent", "not sent again: it is sent"]
    assert len(webhook_server.requests) == 1 and _only(rule).attempts == 1


def test_a_rule_disabled_before_sending_sends_nothing_more(make_rule, make_run, webhook_server, local_webhooks):
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hook")
    _failed_run(make_run)
    services.notification_rule_set_enabled(ref=rule.pk, enabled=False)
    assert attempt(delivery_id=_only(rule).pk) == "failed: the rule was disabled before this was sent"
    assert webhook_server.requests == []


def test_a_test_message_is_recorded_as_a_test_delivery(make_rule, webhook_server, local_webhooks):
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hook", flow_names=["etl"])
    delivery = services.notification_rule_test(ref=rule.name, inline=True)
    assert (delivery.is_test, delivery.status, delivery.flow_run_id, delivery.state_id) == (True, "sent", None, None)
    body = webhook_server.wait()[0].json()
    assert body["test"] is True and body["flow_run"]["flow_name"] == "etl"
    assert f"A test of notification rule {rule.name!r}" in body["state"]["message"]


def test_the_sweep_sends_lost_messages_again_and_fails_deliveries_whose_worker_vanished(make_rule, make_run, settings_override):
    settings_override(RUNWAY_NOTIFICATION_RESEND_SECONDS=60.0)
    rule = make_rule(channel="webhook", target="https://hooks.example.test/x")
    _failed_run(make_run)
    _failed_run(make_run)
    lost_message, lost_worker = deliveries_of(rule)
    long_ago = timezone.now() - timedelta(hours=1)
    NotificationDelivery.objects.filter(pk=lost_message.pk).update(next_attempt_at=long_ago)
    NotificationDelivery.objects.filter(pk=lost_worker.pk).update(status="sending", claimed_at=long_ago, attempts=1)

    resent, failed = services.notification_deliveries_sweep()
    assert resent >= 1 and failed >= 1
    again = NotificationDelivery.objects.get(pk=lost_message.pk)
    gone = NotificationDelivery.objects.get(pk=lost_worker.pk)
    assert again.status == "pending" and again.next_attempt_at > long_ago
    assert gone.status == "failed" and "never delivered twice" in gone.last_error
    services.notification_deliveries_sweep()
    assert NotificationDelivery.objects.get(pk=lost_message.pk).next_attempt_at == again.next_attempt_at  # not again at once


@pytest.mark.parametrize("answer", ["Sent", "Missing"])
def test_a_delivery_whose_rule_or_run_is_gone_is_dropped(answer, make_rule, make_run, webhook_server, local_webhooks):
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/hook")
    run = _failed_run(make_run)
    delivery = _only(rule)
    if answer == "Sent":
        type(run).objects.filter(pk=run.pk).delete()
        assert not NotificationDelivery.objects.filter(pk=delivery.pk).exists()  # deleted with its run
    else:
        NotificationDelivery.objects.filter(pk=delivery.pk).update(rule_id=10**9)  # its rule deleted under it
        assert attempt(delivery_id=delivery.pk) == "dropped: its rule was deleted"
    assert attempt(delivery_id=uuid.uuid4()) == "dropped: no such delivery (its rule or run was deleted)"
    assert webhook_server.requests == []


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl to make a certificate")
def test_https_goes_to_the_checked_address_under_the_hosts_own_name(make_rule, make_run, settings_override, tmp_path):
    """The name is resolved and checked once; the TLS connection to that address still names the host (SNI)
    and verifies its certificate (this one is self-signed, so the attempt fails and is retried)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)  # fmt: skip
    names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda connection, name, _: names.append(name)
    server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=_handshake_once, args=(server,), daemon=True).start()
    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["localhost"], RUNWAY_NOTIFICATION_TIMEOUT_SECONDS=5.0)
    rule = make_rule(channel="webhook", target=f"https://localhost:{server.server_address[1]}/hook")
    _failed_run(make_run)

    outcome = attempt(delivery_id=_only(rule).pk)
    server.server_close()
    assert outcome.startswith("retry in") and "CERTIFICATE_VERIFY_FAILED" in outcome
    assert names == ["localhost"]


def _handshake_once(server: socketserver.TCPServer) -> None:
    connection, _ = server.socket.accept()
    try:
        connection.do_handshake()
    except ssl.SSLError:
        pass  # the client refuses the self-signed certificate
    finally:
        connection.close()
