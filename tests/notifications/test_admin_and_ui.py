"""Rules in the admin (saved through the services, actions) and on the UI's Notifications page."""
from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orchestrator.notifications.models import NotificationDelivery, NotificationRule
from orchestrator.schemas import StateType


@pytest.fixture
def names():
    made: list[str] = []
    yield made
    NotificationRule.objects.filter(name__in=made).delete()


def _browser(staff: bool) -> Client:
    user = get_user_model().objects.create_user(username=f"n-{uuid.uuid4().hex[:8]}", password="pw-for-tests-1",
                                                is_staff=staff, is_superuser=staff)  # fmt: skip
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def _form(name: str, flow_name: str, **fields) -> dict:
    return {"name": name, "enabled": "on", "channel": "webhook", "target": "https://hooks.example.test/a/b",
            "states": ["Failed", "Late"], "flow_names": f"{flow_name}, other-flow", "tags": "", "deployments": "",
            "secret": "", "title_template": "", "body_template": "", **fields}  # fmt: skip


def test_the_admin_adds_a_rule_through_the_service_and_shows_errors_by_field(names, flow_name):
    admin = _browser(staff=True)
    name = f"adm-{uuid.uuid4().hex[:6]}"
    names.append(name)
    refused = admin.post("/admin/notifications/notificationrule/add/", _form(name, flow_name, target="http://10.1.2.3/x"))
    assert refused.status_code == 200 and "webhook host &#x27;10.1.2.3&#x27; is 10.1.2.3, a private address" in refused.content.decode()
    assert not NotificationRule.objects.filter(name=name).exists()

    added = admin.post("/admin/notifications/notificationrule/add/", _form(name, flow_name, secret="k", states=["Failed"]))
    assert added.status_code == 302, added.content.decode()[:2000]
    rule = NotificationRule.objects.get(name=name)
    assert (rule.flow_names, rule.states, rule.secret) == ([flow_name, "other-flow"], ["Failed"], "k")

    changed = admin.post(f"/admin/notifications/notificationrule/{rule.pk}/change/", _form(name, flow_name, tags="etl, daily"))
    assert changed.status_code == 302
    rule.refresh_from_db()
    assert rule.tags == ["etl", "daily"] and rule.secret == "k"  # a secret left empty is kept
    listing = admin.get("/admin/notifications/notificationrule/", {"q": name}).content.decode()
    assert "https://hooks.example.test/…" in listing and "Failed, Late" in listing and "tags: etl, daily" in listing


def test_admin_actions_enable_disable_and_send_a_test(names, make_rule, make_run):
    admin = _browser(staff=True)
    rule = make_rule(channel="webhook", target="https://hooks.example.test/x")

    def act(action: str) -> None:
        answer = admin.post("/admin/notifications/notificationrule/", {"action": action, "_selected_action": [rule.pk]})
        assert answer.status_code == 302

    act("disable")
    assert not NotificationRule.objects.get(pk=rule.pk).enabled
    act("enable")
    act("send_test")
    assert NotificationRule.objects.get(pk=rule.pk).enabled
    assert NotificationDelivery.objects.filter(rule=rule, is_test=True).count() == 1
    make_run(StateType.PENDING, StateType.FAILED)
    deliveries = admin.get("/admin/notifications/notificationdelivery/", {"rule__id__exact": rule.pk}).content.decode()
    assert "(test)" in deliveries and "Pending" in deliveries
    assert admin.get("/admin/notifications/notificationdelivery/add/").status_code == 403


def test_the_notifications_page_needs_a_login_and_is_in_the_navigation():
    response = Client(HTTP_HOST="localhost").get("/notifications/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    page = _browser(staff=False).get("/").content.decode()
    assert '<a href="/notifications/"' in page


def test_the_page_creates_a_rule_then_disables_tests_and_deletes_it(names, flow_name, make_run):
    browser = _browser(staff=False)
    name = f"ui-{uuid.uuid4().hex[:6]}"
    names.append(name)
    bad = browser.post("/notifications/", _form(name, flow_name, channel="email", target="not-an-address"))
    assert bad.status_code == 400 and "&#x27;not-an-address&#x27; is not an email address" in bad.content.decode()

    created = browser.post("/notifications/", _form(name, flow_name, channel="email", target="oncall@example.com"), follow=True)
    rule = NotificationRule.objects.get(name=name)
    assert created.status_code == 200 and f"Created notification rule &#x27;{name}&#x27;" in created.content.decode()
    run = make_run(StateType.PENDING, StateType.FAILED, name="sleepy-panda")
    NotificationDelivery.objects.filter(rule=rule).update(status="failed", last_error="the mail server refused it", attempts=2)

    page = browser.get("/notifications/").content.decode()
    row = re.search(rf'<tr data-rule-id="{rule.pk}">.*?</tr>', page, re.S).group(0)
    assert "oncall@example.com" in row and "Failed, Late" in row and "Disable" in row
    assert f'href="/runs/{run.id}/"' in page and "sleepy-panda" in page and "the mail server refused it" in page

    assert "Disabled notification rule" in browser.post(f"/notifications/{rule.pk}/disable/", follow=True).content.decode()
    assert not NotificationRule.objects.get(pk=rule.pk).enabled
    assert "Sent a test message" in browser.post(f"/notifications/{rule.pk}/test/", follow=True).content.decode()
    assert NotificationDelivery.objects.filter(rule=rule, is_test=True).exists()
    assert browser.post(f"/notifications/{rule.pk}/explode/").status_code == 404
    assert browser.get(f"/notifications/{rule.pk}/delete/").status_code == 405
    assert "Deleted notification rule" in browser.post(f"/notifications/{rule.pk}/delete/", follow=True).content.decode()
    assert not NotificationRule.objects.filter(pk=rule.pk).exists()
    gone = browser.post(f"/notifications/{rule.pk}/enable/", follow=True).content.decode()
    assert f"no notification rule &#x27;{rule.pk}&#x27;" in gone
