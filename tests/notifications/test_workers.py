"""Notifications across processes: a flow run fails here, a real `celery worker` sends the message (to a
local HTTP server or SMTP sink), retries with backoff, never sends twice, and its sweep resends a lost message."""
from __future__ import annotations

import hashlib
import hmac
import os

import pytest

from orchestrator.notifications import dispatch
from orchestrator.notifications.models import NotificationDelivery
from orchestrator.schemas import StateType
from sdk import flow
from tests.notifications.conftest import deliveries_of, wait_until

P, F = StateType.PENDING, StateType.FAILED


@pytest.fixture
def system_queue(settings_override, start_worker):
    """This test's workers' system queue (start_worker gave the test a queue of its own): where messages go."""
    queue = f"{os.environ['RUNWAY_DEFAULT_QUEUE']}-system"
    settings_override(RUNWAY_SYSTEM_QUEUE=queue)
    return queue


def _worker(start_worker, **env: str):
    return start_worker(concurrency=2, RUNWAY_NOTIFICATION_ALLOWED_HOSTS="127.0.0.1", **env)


def test_a_flow_failing_here_is_announced_by_a_worker_through_the_webhook_once(start_worker, system_queue, make_rule,
                                                                              webhook_server, local_webhooks, flow_name):  # fmt: skip
    worker = _worker(start_worker)
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/runway", secret="shared-key")

    @flow(name=flow_name)
    def nightly_load(rows: int) -> int:
        raise ValueError(f"{rows} rows is not enough")

    with pytest.raises(ValueError, match="3 rows is not enough"):
        nightly_load(3)
    [delivery] = deliveries_of(rule)
    dispatch.delivery_publish(delivery_ids=[delivery.pk, delivery.pk])  # the same message twice more

    [request] = webhook_server.wait(1)
    body = request.json()
    assert request.headers["X-Runway-Signature"] == "sha256=" + hmac.new(b"shared-key", request.body, hashlib.sha256).hexdigest()
    assert (body["flow_run"]["flow_name"], body["state"]["name"]) == (flow_name, "Failed")
    assert "3 rows is not enough" in body["state"]["message"] and f"/runs/{delivery.flow_run_id}/" in body["text"]
    wait_until(lambda: worker.output().count("notification delivery") >= 3, 30, "three messages handled")
    sent = NotificationDelivery.objects.get(pk=delivery.pk)
    assert (sent.status, sent.attempts, sent.response) == ("sent", 1, "HTTP 200")
    assert len(webhook_server.requests) == 1  # three messages, one POST
    assert worker.output().count(f"{delivery.pk}: not sent again: it is s") == 2  # being sent, or sent


def test_a_worker_retries_with_backoff_records_the_failure_and_sends_email(start_worker, system_queue, make_rule,
                                                                          make_run, webhook_server, smtp_sink,
                                                                          local_webhooks):  # fmt: skip
    _worker(start_worker, RUNWAY_NOTIFICATION_BACKOFF_SECONDS="0.5", RUNWAY_NOTIFICATION_MAX_ATTEMPTS="3",
            RUNWAY_EMAIL_HOST="127.0.0.1", RUNWAY_EMAIL_PORT=str(smtp_sink.port))  # fmt: skip
    webhook_server.answer(500, 503, 502)
    hook = make_rule(channel="webhook", target=f"{webhook_server.url}/flaky")
    mail = make_rule(channel="email", target="oncall@example.com")
    make_run(P, F, name="grumpy-yak")

    smtp_sink.wait(1)
    assert "Subject: Flow run grumpy-yak of" in smtp_sink.messages[0].data
    wait_until(lambda: deliveries_of(hook)[0].status == "failed", 30, "the webhook delivery giving up")
    requests = webhook_server.wait(3)
    gaps = [later.at - earlier.at for earlier, later in zip(requests, requests[1:], strict=False)]
    assert len(requests) == 3 and gaps[0] >= 0.5 and gaps[1] >= 1.0  # 0.5 s, then doubled
    failed = deliveries_of(hook)[0]
    assert failed.attempts == 3 and failed.last_error == "HTTP 502 Bad Gateway: receiver says no (gave up after 3 attempts)"
    assert deliveries_of(mail)[0].status == "sent"


def test_a_workers_sweep_sends_a_lost_message_again(start_worker, system_queue, make_rule, make_run, webhook_server,
                                                    local_webhooks, request):  # fmt: skip
    _worker(start_worker, RUNWAY_NOTIFICATION_RESEND_SECONDS="1")
    rule = make_rule(channel="webhook", target=f"{webhook_server.url}/late-news")
    request.getfixturevalue("unserved_queue")  # the message is lost
    make_run(P, F)

    webhook_server.wait(1, timeout=30)
    wait_until(lambda: deliveries_of(rule)[0].status == "sent", 30, "the resent delivery recorded as sent")
