"""The UI's views through Django's test client on the real test database: access, filters, cursor
pages, saved views, buttons (services) and the live changes, without a browser."""
from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orchestrator.runs.models import FlowRun
from orchestrator.runs.services import flow_get_or_create, flow_run_create, flow_run_set_state
from orchestrator.schemas import State, StateDetails, StateType
from orchestrator.ui import live
from orchestrator.ui.forms import ParametersForm

PAGES = ["/", "/flows/", "/flow-runs/", "/task-runs/", "/deployments/", "/work-queues/", "/concurrency-limits/",
         "/tokens/", "/settings/", f"/runs/{uuid.uuid4()}/", "/live/?page=runs"]  # fmt: skip


@pytest.fixture
def user():
    return get_user_model().objects.create_user(username=f"p-{uuid.uuid4().hex[:8]}", password="pw-for-tests-1")


@pytest.fixture
def browser_client(user):
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def _runs(flow_name: str, count: int, state: StateType = StateType.COMPLETED) -> list[FlowRun]:
    """`count` runs of a new flow, one a minute apart, newest first (as the lists show them)."""
    flow = flow_get_or_create(name=flow_name)
    start = timezone.now() - timedelta(days=1)
    made = []
    for i in range(count):
        when = start + timedelta(minutes=i)
        run, _ = flow_run_create(flow_id=flow.id, name=f"r{i}", tags=["ui-test", f"n{i % 2}"],
                                 state=State(StateType.SCHEDULED, details=StateDetails(scheduled_time=when)))  # fmt: skip
        if state != StateType.SCHEDULED:
            flow_run_set_state(flow_run_id=run.id, state=State(state), force=True)
        made.append(run)
    return made[::-1]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_asks_a_visitor_who_is_not_logged_in_to_log_in(path):
    response = Client(HTTP_HOST="localhost").get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("name", ["two\nlines", "a/b/", "100% ?#&"])
def test_a_flow_named_with_a_line_break_a_slash_or_url_characters_is_listed_and_has_its_page(browser_client, name):
    run = _runs(name, 1)[0]
    url = reverse("ui:flow", args=[name])
    assert browser_client.get("/flows/").status_code == 200  # the list: the first 500 flows by name
    run_page = browser_client.get(f"/runs/{run.pk}/")
    assert run_page.status_code == 200 and f'href="{html.escape(url)}"' in run_page.content.decode()
    page = browser_client.get(url)
    assert page.status_code == 200 and f"<h1>Flow {html.escape(name)}</h1>" in page.content.decode()


def test_a_bad_filter_is_named_on_the_page_and_nothing_is_listed(browser_client):
    response = browser_client.get("/flow-runs/?state=DONE&range=7d")
    assert response.status_code == 400
    assert "unknown state &#x27;DONE&#x27;; choose from SCHEDULED" in response.content.decode()
    bad_time = browser_client.get("/flow-runs/?range=custom&since=yesterday")
    assert bad_time.status_code == 400 and "since=&#x27;yesterday&#x27; is not a date and time" in bad_time.content.decode()
    assert browser_client.get("/flow-runs/?after=not-a-cursor").status_code == 404


def _listed(client, path: str, **query: str) -> tuple[list[str], str | None, str | None]:
    """The run ids a list page shows, and its Older and Newer cursors, read from the HTML."""
    html = client.get(path, query).content.decode()
    ids = re.findall(r'<tr data-run-id="([0-9a-f-]+)"', html)
    older = re.search(r'after=([A-Za-z0-9_-]+)" rel="next"', html)
    newer = re.search(r'before=([A-Za-z0-9_-]+)" rel="prev"', html)
    return ids, older and older.group(1), newer and newer.group(1)


def test_cursor_pages_list_every_run_once_in_order_both_ways(browser_client):
    name = f"pages-{uuid.uuid4().hex[:6]}"
    runs = _runs(name, 120)
    pages, cursor = [], None
    while True:
        ids, older, newer = _listed(browser_client, "/flow-runs/", flow=name, **({"after": cursor} if cursor else {}))
        pages.append((ids, newer))
        if not older:
            break
        cursor = older
    assert [i for ids, _ in pages for i in ids] == [str(r.pk) for r in runs]
    assert [len(ids) for ids, _ in pages] == [50, 50, 20]
    back, _, _ = _listed(browser_client, "/flow-runs/", flow=name, before=pages[2][1])
    assert back == pages[1][0]


def test_filters_combine_and_a_list_costs_the_same_queries_for_ten_rows_or_fifty(browser_client):
    name = f"filters-{uuid.uuid4().hex[:6]}"
    _runs(name, 10)
    failed = _runs(name + "-f", 60, StateType.FAILED)
    ids, _, _ = _listed(browser_client, "/flow-runs/", flow=name + "-f", state="FAILED", tag="n1")
    assert set(ids) == {str(r.pk) for r in failed if r.tags[1] == "n1"} and len(ids) == 30
    with CaptureQueriesContext(connection) as few:
        browser_client.get("/flow-runs/", {"flow": name})
    with CaptureQueriesContext(connection) as many:
        browser_client.get("/flow-runs/", {"flow": name + "-f"})
    assert len(few) == len(many) <= 12


def test_a_saved_view_is_the_user_s_own(browser_client, user):
    response = browser_client.post("/views/", {"name": "Failed", "page": "flow_runs", "query": "state=FAILED"})
    assert response.status_code == 302 and response["Location"] == "/flow-runs/?state=FAILED"
    assert "Failed" in browser_client.get("/").content.decode()
    other = Client(HTTP_HOST="localhost")
    other.force_login(get_user_model().objects.create_user(username=f"o-{uuid.uuid4().hex[:8]}"))
    assert 'class="saved-view"' not in other.get("/").content.decode()
    view = user.saved_views.get()
    assert other.post(f"/views/{view.pk}/delete/").status_code == 404


def test_a_button_without_a_csrf_token_is_refused(user):
    client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    client.force_login(user)
    run = _runs(f"csrf-{uuid.uuid4().hex[:6]}", 1, StateType.SCHEDULED)[0]
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    assert FlowRun.objects.get(pk=run.pk).state_type == "SCHEDULED"


def test_cancel_ends_a_waiting_run_at_once_and_asks_a_running_one_to_stop(browser_client):
    waiting, running, done = _runs(f"cancel-{uuid.uuid4().hex[:6]}", 3, StateType.SCHEDULED)
    flow_run_set_state(flow_run_id=running.pk, state=State(StateType.RUNNING), force=True)
    flow_run_set_state(flow_run_id=done.pk, state=State(StateType.COMPLETED), force=True)
    for run in (waiting, running, done):
        browser_client.post(f"/runs/{run.pk}/cancel/")
    assert FlowRun.objects.get(pk=waiting.pk).state_type == "CANCELLED"
    assert FlowRun.objects.get(pk=running.pk).state_type == "CANCELLING"
    assert FlowRun.objects.get(pk=done.pk).state_type == "COMPLETED"
    page = browser_client.get(f"/runs/{done.pk}/", follow=True).content.decode()
    assert "is already Completed: only a run that has not finished can be cancelled" in page


def test_retry_is_refused_for_a_run_that_is_not_a_deployment_s(browser_client):
    run = _runs(f"retry-{uuid.uuid4().hex[:6]}", 1, StateType.FAILED)[0]
    page = browser_client.post(f"/runs/{run.pk}/retry/", follow=True).content.decode()
    assert "is not a deployment&#x27;s run" in page
    assert FlowRun.objects.get(pk=run.pk).state_type == "FAILED"


def test_live_changes_send_each_new_state_once():
    run = _runs(f"live-{uuid.uuid4().hex[:6]}", 1, StateType.SCHEDULED)[0]
    sub = live.subscription({"page": "runs", "query": f"flow={run.flow.name}"})
    seen = live.Seen(since=timezone.now() - timedelta(seconds=1))
    first = live.changes(sub, seen)
    assert [row["id"] for row in first["runs"]] == [str(run.pk)]
    assert live.changes(sub, seen) == {}  # nothing new: nothing sent, even within the look-back
    flow_run_set_state(flow_run_id=run.pk, state=State(StateType.RUNNING), force=True)
    again = live.changes(sub, seen)
    assert "Running" in again["runs"][0]["html"]
    with pytest.raises(Exception, match="unknown state"):
        live.subscription({"page": "runs", "query": "state=NOPE"})


def test_the_parameter_form_follows_the_flow_s_schema():
    schema = {"properties": {"count": {"type": "integer"}, "mode": {"enum": ["fast", "slow"]},
                             "dry": {"type": "boolean"}, "items": {"type": "array"}},
              "required": ["count", "mode"]}  # fmt: skip
    form = ParametersForm(schema, {"mode": "fast"}, {"count": "3", "mode": '"slow"', "dry": "true", "items": "[1, 2]"})
    assert form.is_valid(), form.errors
    assert form.parameters() == {"count": 3, "mode": "slow", "dry": True, "items": [1, 2]}
    assert form.fields["count"].required and not form.fields["mode"].required  # mode has a default
    bad = ParametersForm(schema, {}, {"count": "", "mode": '"fast"', "items": "[1,"})
    assert not bad.is_valid() and set(bad.errors) == {"count", "items"}


@pytest.mark.parametrize("path,column", [
    ("/admin/deployments/deployment/", "Schedules"), ("/admin/deployments/workqueue/", "Deployments"),
    ("/admin/limits/concurrencylimit/", "Running"), ("/admin/accounts/apitoken/", "Last used"),
    ("/admin/ui/savedview/", "Query"), ("/admin/ui/preference/", "Palette"),
])  # fmt: skip
def test_the_admin_lists_what_the_ui_manages_with_useful_columns(path, column):
    from orchestrator.accounts.services import token_create
    from orchestrator.deployments.services import deployment_create
    from orchestrator.limits.services import concurrency_limit_create
    from orchestrator.ui.models import Preference, SavedView

    admin = get_user_model().objects.create_superuser(username=f"a-{uuid.uuid4().hex[:8]}", password="pw-admin-1")
    deployment_create(flow_name=f"adm-{uuid.uuid4().hex[:6]}", name="d", entrypoint="f.py:f", code_path="/x",
                      code_version="0" * 64, schedules=[{"cron": "0 9 * * *", "timezone": "Europe/Paris"}])  # fmt: skip
    concurrency_limit_create(tag=f"adm-{uuid.uuid4().hex[:6]}", limit=2)
    token_create(user=admin, name="adm")
    SavedView.objects.create(user=admin, name="v", page="flow_runs", query="state=FAILED")
    Preference.objects.create(user=admin, theme="dark")
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    response = client.get(path)
    assert response.status_code == 200 and column in response.content.decode()


def test_retry_gives_a_failed_deployment_run_back_to_its_queue_which_releases_it(browser_client):
    from orchestrator.deployments.agents import release_due_runs
    from orchestrator.deployments.services import deployment_create, deployment_run_create, work_queue_create

    queue = f"retry-{uuid.uuid4().hex[:6]}"
    work_queue_create(name=queue)
    deployment, _ = deployment_create(flow_name=f"retry-{uuid.uuid4().hex[:6]}", name="d", entrypoint="f.py:f",
                                      code_path="/x", code_version="0" * 64, work_queue_name=queue)  # fmt: skip
    run = deployment_run_create(ref=str(deployment.pk))
    FlowRun.objects.filter(pk=run.pk).update(worker="agent-1@host")  # the agent that ran it
    flow_run_set_state(flow_run_id=run.pk, state=State(StateType.FAILED, message="boom"), force=True)
    page = browser_client.post(f"/runs/{run.pk}/retry/", follow=True).content.decode()
    assert "its work queue" in page
    again = FlowRun.objects.get(pk=run.pk)
    assert (again.state_type, again.state_name, again.worker) == ("SCHEDULED", "AwaitingRetry", "")
    assert again.next_scheduled_start_time <= timezone.now()
    assert [r.flow_run_id for r in release_due_runs(queue_names=[queue])] == [run.pk]
    assert FlowRun.objects.get(pk=run.pk).state_type == "PENDING"


def test_the_task_runs_list_shows_one_flow_run_s_task_runs(browser_client, client):
    from sdk import flow, task

    @task
    def step(i: int) -> int:
        return i

    name = f"tr-{uuid.uuid4().hex[:6]}"

    @flow(name=name)
    def many() -> None:
        for i in range(3):
            step(i)

    many()
    many()  # a second run, whose task runs are not listed
    run_id = FlowRun.objects.filter(flow__name=name).order_by("created").first().pk
    ids, _, _ = _listed(browser_client, "/task-runs/", flow_run=str(run_id))
    assert len(ids) == 3
    assert browser_client.get("/task-runs/", {"flow_run": "nope"}).status_code == 400


def test_a_paused_run_s_page_offers_resume_with_its_input_schema_and_checks_the_input(browser_client):
    from orchestrator.runs.pauses import flow_run_pause

    run = _runs(f"pause-{uuid.uuid4().hex[:6]}", 1, StateType.SCHEDULED)[0]
    flow_run_set_state(flow_run_id=run.pk, state=State(StateType.RUNNING), force=True)
    schema = {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}
    flow_run_pause(flow_run_id=run.pk, key="pause-0", timeout_seconds=60, input_schema=schema)
    page = browser_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Resume" in page and "Input it waits for (JSON)" in page and "&quot;approved&quot;" in page

    refused = browser_client.post(f"/runs/{run.pk}/resume/", {"run_input": '{"approved": "yes"}'}, follow=True)
    assert "is not of type" in refused.content.decode()
    bad_json = browser_client.post(f"/runs/{run.pk}/resume/", {"run_input": "{oops"}, follow=True)
    assert "the input is not valid JSON" in bad_json.content.decode()
    assert FlowRun.objects.get(pk=run.pk).state_type == "PAUSED"

    done = browser_client.post(f"/runs/{run.pk}/resume/", {"run_input": '{"approved": true}'}, follow=True)
    assert "The run is now Running" in done.content.decode()
    assert FlowRun.objects.get(pk=run.pk).run_input["pause-0"]["value"] == {"approved": True}
