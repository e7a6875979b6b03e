"""/api/notifications/: rules created, listed, changed, deleted; deliveries; tests; errors; scopes; queries."""
from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orchestrator.notifications.models import NotificationDelivery, NotificationRule
from orchestrator.schemas import StateType


@pytest.fixture
def api(make_token):
    """api(scope="write") -> a Django test client sending a token, JSON in and out."""

    def make(scope: str = "write") -> Client:
        return Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {make_token(scope)}")

    return make


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    NotificationRule.objects.filter(name__in=names).delete()


def _rule(name: str, flow_name: str, **fields) -> dict:
    return {"name": name, "channel": "slack", "target": "https://hooks.example.test/services/T0/B0/secret-part",
            "states": ["failed", "Crashed"], "flow_names": [flow_name], "secret": "k", **fields}  # fmt: skip


def test_a_rule_is_created_read_listed_changed_and_deleted(api, cleanup, flow_name):
    client, name = api(), f"api-{uuid.uuid4().hex[:6]}"
    cleanup.append(name)
    created = client.post("/api/notifications/", _rule(name, flow_name), content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body | {"id": 0, "created": None, "updated": None} == {
        "id": 0, "name": name, "enabled": True, "channel": "slack", "target": "https://hooks.example.test/…",
        "has_secret": True, "states": ["Failed", "Crashed"], "flow_names": [flow_name], "tags": [], "deployment_ids": [],
        "title_template": "", "body_template": "", "sent_count": 0, "failed_count": 0, "created": None, "updated": None}  # fmt: skip
    rule_id = body["id"]
    assert "secret" not in body and "secret-part" not in created.content.decode()

    listed = [r for r in client.get("/api/notifications/", {"limit": 500}).json()["results"] if r["id"] == rule_id]
    patched = client.patch(f"/api/notifications/{rule_id}/", {"enabled": False, "tags": ["etl"]}, content_type="application/json")
    replaced = client.put(f"/api/notifications/{rule_id}/", _rule(name, flow_name, channel="email", target="a@example.com",
                                                               secret=""), content_type="application/json")  # fmt: skip
    assert len(listed) == 1 and patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["tags"] == ["etl"] and patched.json()["has_secret"] is True
    assert replaced.status_code == 200, replaced.content
    assert (replaced.json()["channel"], replaced.json()["target"], replaced.json()["tags"], replaced.json()["enabled"],
            replaced.json()["has_secret"]) == ("email", "a@example.com", [], True, False)  # fmt: skip
    assert client.get(f"/api/notifications/{rule_id}/").json()["target"] == "a@example.com"
    assert client.delete(f"/api/notifications/{rule_id}/").status_code == 204
    gone = client.get(f"/api/notifications/{rule_id}/")
    assert gone.status_code == 404 and gone.json()["detail"] == f"no notification rule '{rule_id}'; list them with `python manage.py notification ls`"


@pytest.mark.parametrize(("change", "status", "detail"), [
    ({"states": ["Exploded"]}, 400, "unknown state 'Exploded' for a notification rule"),
    ({"target": "http://169.254.169.254/latest"}, 400, "webhook host '169.254.169.254' is 169.254.169.254, a link-local"),
    ({"channel": "email", "target": "nobody", "secret": ""}, 400, "'nobody' is not an email address"),
    ({"colour": "red"}, 400, "colour: unknown field 'colour'"),
    ({"states": []}, 400, "states: Ensure this field has at least 1 elements."),
    ({"channel": "fax"}, 400, 'channel: "fax" is not a valid choice.'),
])  # fmt: skip
def test_bad_rules_are_refused_with_one_error_shape_naming_the_problem(api, cleanup, flow_name, change, status, detail):
    name = f"api-bad-{uuid.uuid4().hex[:6]}"
    cleanup.append(name)
    answer = api().post("/api/notifications/", _rule(name, flow_name, **change), content_type="application/json")
    assert answer.status_code == status and answer.json()["code"] == "invalid"
    assert detail in answer.json()["detail"], answer.json()
    assert not NotificationRule.objects.filter(name=name).exists()


def test_deliveries_are_listed_newest_first_and_filtered_by_status(api, make_rule, make_run):
    rule = make_rule(channel="webhook", target="https://hooks.example.test/x")
    first, second = make_run(StateType.PENDING, StateType.FAILED), make_run(StateType.PENDING, StateType.FAILED)
    NotificationDelivery.objects.filter(rule=rule, flow_run=first).update(status="failed", last_error="HTTP 500", attempts=5)
    client = api("read")

    every = client.get(f"/api/notifications/{rule.pk}/deliveries/").json()["results"]
    failed = client.get(f"/api/notifications/{rule.pk}/deliveries/", {"status": "failed"}).json()["results"]
    bad = client.get(f"/api/notifications/{rule.pk}/deliveries/", {"status": "lost"})

    assert [d["flow_run_id"] for d in every] == [str(second.id), str(first.id)]
    assert every[0] | {"id": None, "state_id": None, "created": None, "updated": None, "next_attempt_at": None} == {
        "id": None, "rule_id": rule.pk, "rule_name": rule.name, "flow_run_id": str(second.id),
        "flow_run_name": second.name, "state_id": None, "state_type": "FAILED", "state_name": "Failed", "is_test": False,
        "status": "pending", "attempts": 0, "last_error": "", "response": "", "next_attempt_at": None,
        "created": None, "sent_at": None, "updated": None}  # fmt: skip
    assert [(d["status"], d["last_error"], d["attempts"]) for d in failed] == [("failed", "HTTP 500", 5)]
    assert bad.status_code == 400 and "unknown status 'lost'" in bad.json()["detail"]


def test_a_test_message_is_queued_for_a_worker_and_answered_202(api, make_rule):
    rule = make_rule(channel="webhook", target="https://hooks.example.test/x")
    answer = api().post(f"/api/notifications/{rule.pk}/test/")
    assert answer.status_code == 202
    assert (answer.json()["is_test"], answer.json()["status"], answer.json()["flow_run_id"]) == (True, "pending", None)
    assert NotificationDelivery.objects.filter(rule=rule, is_test=True).count() == 1


def test_a_read_token_lists_rules_but_cannot_change_or_test_them(api, make_rule):
    rule = make_rule(channel="webhook", target="https://hooks.example.test/x")
    read = api("read")
    assert read.get(f"/api/notifications/{rule.pk}/").status_code == 200
    assert read.patch(f"/api/notifications/{rule.pk}/", {"enabled": False}, content_type="application/json").status_code == 403
    assert read.post(f"/api/notifications/{rule.pk}/test/").status_code == 403
    assert read.delete(f"/api/notifications/{rule.pk}/").status_code == 403
    assert Client(HTTP_HOST="localhost").get("/api/notifications/").status_code == 401
    assert NotificationRule.objects.get(pk=rule.pk).enabled is True


def test_lists_cost_the_same_queries_for_two_rules_or_deliveries_as_for_twelve(api, make_rule, make_run):
    client = api("read")
    rule = make_rule(channel="webhook", target="https://hooks.example.test/x")
    client.get("/api/flows/")  # the token's first use is recorded once

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    for _ in range(2):
        make_rule(channel="webhook", target="https://hooks.example.test/y")
        make_run(StateType.PENDING, StateType.FAILED)
    few = queries("/api/notifications/"), queries(f"/api/notifications/{rule.pk}/deliveries/")
    for _ in range(10):
        make_rule(channel="webhook", target="https://hooks.example.test/y")
        make_run(StateType.PENDING, StateType.FAILED)
    assert (queries("/api/notifications/"), queries(f"/api/notifications/{rule.pk}/deliveries/")) == few
    assert few[0] <= 2 and few[1] <= 3  # the token, the page (and for deliveries, the rule)


def test_the_schema_describes_the_notification_endpoints(api):
    schema = api("read").get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert {"/api/notifications/", "/api/notifications/{id}/", "/api/notifications/{id}/deliveries/",
            "/api/notifications/{id}/test/"} <= set(paths)  # fmt: skip


def test_an_id_too_large_for_the_database_is_a_404_not_a_server_error(api):
    answer = api().get(f"/api/notifications/{10**30}/")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
