"""Concurrency limits over the live API and in the admin; the CLI is in tests/orchestrator/test_limits_cli.py."""
from __future__ import annotations

import uuid

from orchestrator.limits.models import ConcurrencyLimit
from orchestrator.limits.services import concurrency_limit_create
from orchestrator.runs import services
from orchestrator.schemas import State, StateType
from tests.api.test_admin_tokens import admin_browser


def _tag() -> str:
    return f"api-{uuid.uuid4().hex[:6]}"


def _running_task_run(tag: str) -> str:
    flow = services.flow_get_or_create(name=f"limits-{uuid.uuid4().hex[:6]}")
    flow_run, _ = services.flow_run_create(flow_id=flow.id, name="limited", state=State(StateType.RUNNING))
    run, answer = services.task_run_create(flow_run_id=flow_run.id, task_key="t", dynamic_key="0", name="slot-holder",
                                           state=State(StateType.PENDING), tags=[tag], then=State(StateType.RUNNING))  # fmt: skip
    assert answer.state.type == StateType.RUNNING
    return str(run.id)


def test_a_limit_is_created_changed_listed_inspected_and_deleted(api):
    tag = _tag()
    created = api.post("concurrency_limits/", json={"tag": tag, "concurrency_limit": 2})
    changed = api.post("concurrency_limits/", json={"tag": tag, "concurrency_limit": 1})
    assert (created.status_code, changed.status_code) == (201, 200), created.text
    assert changed.json() | {"created": None, "updated": None} == {
        "tag": tag, "concurrency_limit": 1, "active_count": 0, "created": None, "updated": None}  # fmt: skip
    holder = _running_task_run(tag)

    detail = api.get(f"concurrency_limits/{tag}/").json()
    listed = [row for row in api.get("concurrency_limits/", params={"limit": 500}).json()["results"] if row["tag"] == tag]

    assert (detail["active_count"], [s["task_run_id"] for s in detail["active_slots"]]) == (1, [holder])
    assert detail["active_slots"][0]["task_run_name"] == "slot-holder"
    assert [(row["concurrency_limit"], row["active_count"]) for row in listed] == [(1, 1)]
    assert api.delete(f"concurrency_limits/{tag}/").status_code == 204
    gone = api.get(f"concurrency_limits/{tag}/")
    assert gone.status_code == 404 and tag in gone.json()["detail"]


def test_bad_limits_are_refused_naming_the_field(api):
    tag = _tag()
    negative = api.post("concurrency_limits/", json={"tag": tag, "concurrency_limit": -1})
    no_tag = api.post("concurrency_limits/", json={"tag": "  ", "concurrency_limit": 1})
    extra = api.post("concurrency_limits/", json={"tag": tag, "concurrency_limit": 1, "limit": 3})
    huge = api.post("concurrency_limits/", json={"tag": tag, "concurrency_limit": 10**30})  # found by schemathesis: a 500
    assert negative.status_code == no_tag.status_code == extra.status_code == huge.status_code == 400
    assert "concurrency_limit" in negative.json()["fields"] and "tag" in no_tag.json()["fields"]
    assert "unknown field 'limit'" in str(extra.json()["fields"])
    assert not ConcurrencyLimit.objects.filter(tag=tag).exists()
    assert api.delete(f"concurrency_limits/{tag}/").status_code == 404


def test_a_read_token_may_list_limits_but_not_change_them(live_server, make_token):
    import httpx

    tag = _tag()
    concurrency_limit_create(tag=tag, limit=1)
    with httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {make_token(scope='read')}"}) as read:
        assert read.get(f"concurrency_limits/{tag}/").status_code == 200
        assert read.post("concurrency_limits/", json={"tag": tag, "concurrency_limit": 5}).status_code == 403
        assert read.delete(f"concurrency_limits/{tag}/").status_code == 403
    assert ConcurrencyLimit.objects.get(tag=tag).concurrency_limit == 1


def test_the_admin_sets_a_limit_and_shows_the_runs_holding_its_slots(live_server):
    browser = admin_browser(live_server)
    tag = _tag()
    added = browser.post("/admin/limits/concurrencylimit/add/", follow_redirects=True, data={
        "tag": tag, "concurrency_limit": 3, "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    assert added.status_code == 200 and ConcurrencyLimit.objects.get(tag=tag).concurrency_limit == 3
    holder = _running_task_run(tag)
    limit = ConcurrencyLimit.objects.get(tag=tag)

    listing = browser.get("/admin/limits/concurrencylimit/", params={"q": tag})
    page = browser.get(f"/admin/limits/concurrencylimit/{limit.pk}/change/")

    assert listing.status_code == 200 and tag in listing.text and "Running" in listing.text
    assert page.status_code == 200 and holder in page.text and "slot-holder" in page.text
    bad = browser.post("/admin/limits/concurrencylimit/add/", data={
        "tag": tag, "concurrency_limit": 1, "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    assert bad.status_code == 200 and "errornote" in bad.text  # the tag has a limit already
