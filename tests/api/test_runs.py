"""Flows, flow runs and task runs over the live API: create, propose, read, filter, page, count."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest


def new_flow_run(api, flow_name: str, **fields) -> dict:
    response = api.post("flow_runs/", json={"flow_name": flow_name, **fields})
    assert response.status_code == 201, response.text
    return response.json()["flow_run"]


def propose(api, kind: str, run_id: str, type_: str, **state) -> dict:
    response = api.post(f"{kind}_runs/{run_id}/set_state/", json={"state": {"type": type_, **state}})
    assert response.status_code in (200, 409), response.text
    return response.json()


def test_flows_are_created_once_by_name(api):
    name = f"api-flow-{uuid.uuid4().hex[:6]}"
    first = api.post("flows/", json={"name": name})
    again = api.post("flows/", json={"name": name})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert api.get(f"flows/{first.json()['id']}/").json()["name"] == name
    assert [f["name"] for f in api.get("flows/", params={"name": name}).json()["results"]] == [name]


def test_a_flow_run_goes_through_the_rules_and_keeps_its_history(api):
    run = new_flow_run(api, "api-lifecycle", parameters={"x": 1}, tags=["etl"],
                       empirical_policy={"retries": 1, "retry_delay": 0})  # fmt: skip
    assert run["state"]["type"] == "PENDING" and run["parameters"] == {"x": 1}
    assert propose(api, "flow", run["id"], "RUNNING")["status"] == "ACCEPT"
    retried = propose(api, "flow", run["id"], "FAILED", message="boom")
    assert retried["status"] == "REJECT" and retried["state"]["name"] == "AwaitingRetry"
    again = propose(api, "flow", run["id"], "RUNNING")
    assert again["status"] == "ACCEPT" and again["state"]["name"] == "Retrying"
    assert propose(api, "flow", run["id"], "COMPLETED", result={"type": "json", "value": 3})["status"] == "ACCEPT"
    detail = api.get(f"flow_runs/{run['id']}/").json()
    assert detail["state"]["type"] == "COMPLETED" and detail["run_count"] == 2 and detail["end_time"]
    history = api.get(f"flow_runs/{run['id']}/states/").json()["results"]
    assert [s["name"] for s in history] == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert history[-1]["result"] == {"type": "json", "value": 3}


def test_an_illegal_transition_answers_409_naming_it_and_changes_nothing(api):
    run = new_flow_run(api, "api-illegal")
    propose(api, "flow", run["id"], "RUNNING")
    propose(api, "flow", run["id"], "COMPLETED")
    response = api.post(f"flow_runs/{run['id']}/set_state/", json={"state": {"type": "RUNNING"}})
    assert response.status_code == 409
    body = response.json()
    assert body["status"] == "REJECT" and body["code"] == "illegal_transition"
    assert body["detail"] == "a flow run cannot go from Completed to Running"
    assert body["state"]["type"] == "COMPLETED"
    assert len(api.get(f"flow_runs/{run['id']}/states/").json()["results"]) == 3


def test_a_repeated_proposal_with_the_same_transition_key_is_applied_once(api):
    run = new_flow_run(api, "api-idempotent")
    key = uuid.uuid4().hex
    answers = [propose(api, "flow", run["id"], "RUNNING", details={"transition_key": key}) for _ in range(3)]
    assert {a["status"] for a in answers} == {"ACCEPT"}
    assert len({a["state"]["id"] for a in answers}) == 1
    names = [s["name"] for s in api.get(f"flow_runs/{run['id']}/states/").json()["results"]]
    assert names == ["Pending", "Running"]


def test_a_flow_run_created_twice_with_one_idempotency_key_is_one_run(api):
    key = uuid.uuid4().hex
    first = new_flow_run(api, "api-idem-create", idempotency_key=key)
    second = new_flow_run(api, "api-idem-create", idempotency_key=key)
    assert first["id"] == second["id"]


def test_a_scheduled_run_is_told_to_wait_until_its_time(api):
    later = (datetime.now(timezone.utc) + timedelta(seconds=60)).isoformat()
    run = new_flow_run(api, "api-wait", state={"type": "SCHEDULED", "details": {"scheduled_time": later}})
    answer = propose(api, "flow", run["id"], "RUNNING")
    assert answer["status"] == "WAIT" and 50 < answer["delay_seconds"] <= 60
    assert answer["state"]["type"] == "SCHEDULED"


def test_task_runs_create_with_then_and_retry_under_their_flow_run(api):
    flow_run = new_flow_run(api, "api-tasks")
    propose(api, "flow", flow_run["id"], "RUNNING")
    run_id = str(uuid.uuid4())
    body = {"id": run_id, "flow_run_id": flow_run["id"], "task_key": "mod.add", "dynamic_key": "0",
            "empirical_policy": {"retries": 2, "retry_delay": [0, 0]}, "then": {"type": "RUNNING"}}  # fmt: skip
    created = api.post("task_runs/", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["task_run"]["id"] == run_id and created.json()["task_run"]["name"] == "add-0"
    assert created.json()["orchestration"]["state"]["type"] == "RUNNING"
    again = api.post("task_runs/", json=body)  # a retried create finds the run
    assert again.json()["task_run"]["id"] == run_id
    assert propose(api, "task", run_id, "FAILED")["state"]["name"] == "AwaitingRetry"
    listed = api.get("task_runs/", params={"flow_run": flow_run["id"]}).json()["results"]
    assert [(r["id"], r["state"]["name"]) for r in listed] == [(run_id, "AwaitingRetry")]


def test_runs_are_renamed_with_patch_and_a_bad_rename_changes_nothing(api, live_server, make_token):
    from sdk.client.http import HttpClient

    flow_run = new_flow_run(api, "api-rename")
    run_id = api.post("task_runs/", json={"flow_run_id": flow_run["id"], "task_key": "m.proc"}).json()["task_run"]["id"]
    HttpClient(f"{live_server}/api", make_token()).set_task_run_name(uuid.UUID(run_id), "proc-of-2026")
    assert api.get(f"task_runs/{run_id}/").json()["name"] == "proc-of-2026"

    for body, detail in [({"name": ""}, "name: This field may not be blank."),
                         ({"name": "x" * 256}, "name: Ensure this field has no more than 255 characters."),
                         ({"name": "p", "state": "COMPLETED"}, "state: unknown field 'state'; this object takes: name")]:  # fmt: skip
        response = api.patch(f"task_runs/{run_id}/", json=body)
        assert (response.status_code, response.json()["detail"]) == (400, detail)
    missing = uuid.uuid4()
    response = api.patch(f"task_runs/{missing}/", json={"name": "p"})
    assert (response.status_code, response.json()["detail"]) == (404, f"task run {missing} does not exist")
    assert api.put(f"task_runs/{run_id}/", json={"name": "p"}).status_code == 405
    assert api.get(f"task_runs/{run_id}/").json()["name"] == "proc-of-2026"

    HttpClient(f"{live_server}/api", make_token()).set_flow_run_name(uuid.UUID(flow_run["id"]), "rename-of-monday")
    assert api.get(f"flow_runs/{flow_run['id']}/").json()["name"] == "rename-of-monday"
    response = api.patch(f"flow_runs/{flow_run['id']}/", json={"name": "again"})
    assert (response.status_code, response.json()["name"], response.json()["flow_name"]) == (200, "again", "api-rename")


def test_a_task_run_of_an_unknown_flow_run_is_a_404_naming_it(api):
    missing = str(uuid.uuid4())
    response = api.post("task_runs/", json={"flow_run_id": missing, "task_key": "m.t"})
    assert response.status_code == 404
    assert response.json()["detail"] == f"flow run {missing} does not exist"


def test_lists_filter_by_flow_state_tags_parent_and_time(api):
    flow = f"api-filter-{uuid.uuid4().hex[:6]}"
    parent = new_flow_run(api, flow, tags=["a", "b"])
    child = new_flow_run(api, flow, tags=["a"], parent_flow_run_id=parent["id"])
    propose(api, "flow", child["id"], "RUNNING")

    def ids(**params) -> set[str]:
        response = api.get("flow_runs/", params={"flow_name": flow, **params})
        assert response.status_code == 200, response.text
        return {r["id"] for r in response.json()["results"]}

    assert ids() == {parent["id"], child["id"]}
    assert ids(state_type="running") == {child["id"]}
    assert ids(state_type="PENDING,RUNNING") == {parent["id"], child["id"]}
    assert ids(state_name="Pending") == {parent["id"]}
    assert ids(tags="a,b") == {parent["id"]}
    assert ids(tags="a") == {parent["id"], child["id"]}
    assert ids(parent_flow_run=parent["id"]) == {child["id"]}
    assert ids(top_level="true") == {parent["id"]}
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert ids(expected_start_time_after=future) == set()
    assert ids(expected_start_time_before=future) == {parent["id"], child["id"]}
    flow_id = parent["flow_id"]
    assert {r["id"] for r in api.get("flow_runs/", params={"flow": flow_id}).json()["results"]} == ids()


def test_cursor_pages_cover_every_run_once_in_the_requested_order(api):
    flow = f"api-pages-{uuid.uuid4().hex[:6]}"
    made = [new_flow_run(api, flow)["id"] for _ in range(7)]
    seen, page = [], api.get("flow_runs/", params={"flow_name": flow, "limit": 3, "ordering": "created"}).json()
    while True:
        seen += [r["id"] for r in page["results"]]
        if not page["next"]:
            break
        page = api.get(page["next"]).json()
    assert seen == made


def test_counts_by_state_follow_the_filters(api):
    flow = f"api-counts-{uuid.uuid4().hex[:6]}"
    runs = [new_flow_run(api, flow) for _ in range(3)]
    propose(api, "flow", runs[0]["id"], "RUNNING")
    counts = api.get("flow_runs/counts/", params={"flow_name": flow}).json()
    assert counts == {"total": 3, "by_type": {"PENDING": 2, "RUNNING": 1}, "by_name": {"Pending": 2, "Running": 1}}


@pytest.mark.parametrize("params", [{"state_type": "SLEEPING"}, {"flow": "not-a-uuid"},
                                    {"expected_start_time_after": "yesterday"}, {"ordering": "password"}])  # fmt: skip
def test_a_bad_filter_is_a_400_naming_the_parameter(api, params):
    response = api.get("flow_runs/", params=params)
    assert response.status_code == 400, response.text
    assert next(iter(params)) in response.json()["detail"]


def test_task_runs_are_created_in_a_batch_in_order_and_a_retried_batch_finds_them(api):
    flow_run = new_flow_run(api, "api-batch")
    propose(api, "flow", flow_run["id"], "RUNNING")
    items = [{"id": str(uuid.uuid4()), "flow_run_id": flow_run["id"], "task_key": "m.double", "dynamic_key": str(i)}
             for i in range(5)]  # fmt: skip
    created = api.post("task_runs/batch/", json=items)
    assert created.status_code == 201, created.text
    assert [a["id"] for a in created.json()] == [i["id"] for i in items]
    assert {a["orchestration"]["state"]["type"] for a in created.json()} == {"PENDING"}
    again = api.post("task_runs/batch/", json=items)
    assert [a["id"] for a in again.json()] == [i["id"] for i in items]
    listed = api.get("task_runs/", params={"flow_run": flow_run["id"]}).json()["results"]
    assert len(listed) == 5


def test_a_bad_item_in_a_batch_stores_nothing_and_names_the_item(api):
    flow_run = new_flow_run(api, "api-batch-bad")
    items = [{"flow_run_id": flow_run["id"], "task_key": "m.ok"}, {"flow_run_id": flow_run["id"], "task_key": ""}]
    response = api.post("task_runs/batch/", json=items)
    assert response.status_code == 400 and response.json()["detail"].startswith("1.task_key")
    assert api.get("task_runs/", params={"flow_run": flow_run["id"]}).json()["results"] == []
