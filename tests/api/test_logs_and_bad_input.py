"""Logs in batches and in order; malformed input gets a 4xx naming the problem, never a 5xx."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest


def flow_run(api) -> str:
    return api.post("flow_runs/", json={"flow_name": "api-logs"}).json()["flow_run"]["id"]


def line(run_id: str, i: int, level: int = 20, **extra) -> dict:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=i)
    return {"flow_run_id": run_id, "level": level, "name": "test", "message": f"line {i}",
            "timestamp": when.isoformat(), **extra}  # fmt: skip


def test_logs_are_stored_in_batches_and_listed_in_order_with_a_level_filter(api):
    run_id = flow_run(api)
    batch = [line(run_id, i, level=40 if i % 3 == 0 else 20) for i in reversed(range(12))]
    assert api.post("logs/", json=batch).json() == {"created": 12}
    listed = api.get("logs/", params={"flow_run": run_id, "limit": 5}).json()
    messages = [entry["message"] for entry in listed["results"]]
    while listed["next"]:
        listed = api.get(listed["next"]).json()
        messages += [entry["message"] for entry in listed["results"]]
    assert messages == [f"line {i}" for i in range(12)]
    errors = api.get("logs/", params={"flow_run": run_id, "min_level": "error"}).json()["results"]
    assert [e["message"] for e in errors] == ["line 0", "line 3", "line 6", "line 9"]
    assert api.get("logs/", params={"flow_run": run_id, "min_level": "40"}).json()["results"] == errors
    found = api.get("logs/", params={"flow_run": run_id, "search": "line 1"}).json()["results"]
    assert [e["message"] for e in found] == ["line 1", "line 10", "line 11"]


def test_an_unknown_log_level_is_a_400(api):
    response = api.get("logs/", params={"min_level": "loud"})
    assert response.status_code == 400 and "unknown log level 'loud'" in response.json()["detail"]


def test_a_log_line_of_an_unknown_run_is_a_404_and_nothing_of_the_batch_is_stored(api):
    run_id = flow_run(api)
    missing = str(uuid.uuid4())
    response = api.post("logs/", json=[line(run_id, 1), line(missing, 2)])
    assert response.status_code == 404 and missing in response.json()["detail"]
    assert api.get("logs/", params={"flow_run": run_id}).json()["results"] == []


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("flow_runs/", b"{not json", 400, "JSON parse error"),
        ("flow_runs/", {"flow_name": "x", "colour": "red"}, 400, "colour: unknown field 'colour'"),
        ("flow_runs/", {"flow_name": "x", "tags": "etl"}, 400, "tags: Expected a list"),
        ("flow_runs/", {"flow_name": "x", "empirical_policy": {"retries": -1}}, 400, "empirical_policy.retries"),
        ("flow_runs/", {}, 400, "flow_id: give exactly one of flow_id and flow_name"),
        ("flow_runs/", {"flow_id": str(uuid.UUID(int=0))}, 404, "flow 00000000-0000-0000-0000-000000000000 does not exist"),
        ("flow_runs/", {"flow_name": "x", "parent_flow_run_id": str(uuid.UUID(int=1))}, 404, "parent flow run"),
        ("flow_runs/", {"flow_name": "x", "state": {"type": "SLEEPING"}}, 400, "state.type"),
        ("flow_runs/", {"flow_name": "x", "state": {"type": "PENDING", "details": {"color": 1}}}, 400,
         "unknown state detail(s): color"),
        ("flow_runs/", ["a", "list"], 400, "Expected a dictionary"),
        ("logs/", [], 400, "This list may not be empty"),
        ("logs/", [{"level": "loud"}], 400, "0.level"),
        ("logs/", {"not": "a list"}, 400, "Expected a list"),
        (f"flow_runs/{uuid.uuid4()}/set_state/", {"state": {"type": "RUNNING"}}, 404, "does not exist"),
        ("flow_runs/not-a-uuid/set_state/", {"state": {"type": "RUNNING"}}, 404, "no API endpoint or object at"),
        ("task_runs/", {"task_key": ""}, 400, "task_key"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_4xx_naming_the_problem(api, path, body, status, says):
    if isinstance(body, bytes):
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = api.post(path, json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"], response.json()


def test_an_oversized_body_is_a_413(api):
    run_id = flow_run(api)
    huge = [line(run_id, i, message="x" * 10_000) for i in range(600)]  # ~6 MB
    response = api.post("logs/", json=huge)
    assert response.status_code == 413
    assert "larger than this server accepts" in response.json()["detail"]


def test_too_many_log_lines_in_one_request_is_a_400(api):
    run_id = flow_run(api)
    response = api.post("logs/", json=[line(run_id, i) for i in range(1001)])
    assert response.status_code == 400 and "1000" in response.json()["detail"]


def test_times_with_offsets_python_accepts_but_databases_refuse_are_normalized_or_refused(api):
    odd = "2026-11-14T05:19:36.808+18:54"  # a legal ISO 8601 offset PostgreSQL cannot store
    assert api.get("flow_runs/", params={"start_time_after": odd}).status_code == 200
    edge = api.get("flow_runs/", params={"start_time_after": "0001-01-01T00:00:00+05:00"})
    assert edge.status_code == 400 and "out of the range of dates" in edge.json()["detail"]
    run = api.post("flow_runs/", json={"flow_name": "odd-offsets",
                                       "state": {"type": "SCHEDULED", "details": {"scheduled_time": odd}}})  # fmt: skip
    assert run.status_code == 201, run.text
    assert run.json()["flow_run"]["next_scheduled_start_time"].startswith("2026-11-13T10:25:36.808")
    naive = api.post("flow_runs/", json={"flow_name": "odd-offsets",
                                         "state": {"type": "SCHEDULED", "details": {"scheduled_time": "2026-01-01T00:00"}}})  # fmt: skip
    assert naive.status_code == 400 and "needs a time zone" in naive.json()["detail"]
    line = {"flow_run_id": run.json()["flow_run"]["id"], "level": 20, "name": "x", "message": "m", "timestamp": odd}
    assert api.post("logs/", json=[line]).status_code == 201
    line["timestamp"] = "0001-01-01T00:00:00+05:00"
    assert api.post("logs/", json=[line]).status_code == 400


def test_a_nul_character_anywhere_in_a_body_or_a_filter_is_a_400(api):
    body = {"flow_name": "nul", "parameters": {"x": ["ok", "bad\u0000"]}}
    response = api.post("flow_runs/", json=body)
    assert response.status_code == 400 and "found at parameters.x.1" in response.json()["detail"]
    assert api.get("flow_runs/", params={"name": "a\x00b"}).status_code == 400
    assert api.get("flow_runs/", params={"state_name": "a\x00b"}).status_code == 400


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"flow_name": "x", "parameters": {"a": "\\ud800"}}', "lone UTF-16 surrogate"),
        (b'{"flow_name": "x", "tags": ["\\udfff"]}', "lone UTF-16 surrogate"),
        (b'{"flow_name": "x", "parameters": ' + b'[' * 2000 + b']' * 2000 + b'}', "nested deeper than"),
        (b'{"flow_name": "x", "parameters": {"deep": ' + b'[' * 100 + b']' * 100 + b'}}', "nested deeper than"),
    ],
)  # fmt: skip
def test_json_the_database_cannot_store_is_a_400_and_nothing_is_stored(api, raw, says):
    before = api.get("flow_runs/counts/").json()["total"]
    response = api.post("flow_runs/", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert says in response.json()["detail"]
    assert api.get("flow_runs/counts/").json()["total"] == before
    assert api.get("flow_runs/").status_code == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"flow_name": "x", "empirical_policy": {"retries": 1, "retry_delay": 1e308}}, "retry_delay must be"),
        ({"flow_name": "x", "empirical_policy": {"retry_jitter_factor": 1e308}}, "retry_jitter_factor"),
        ({"flow_name": "x", "state": {"type": "PENDING", "details": {"transition_key": {"a": 1}}}}, "transition_key must be a string"),
        ({"flow_name": "x", "state": {"type": "PENDING", "details": {"cache_key": "k" * 300}}}, "at most 255"),
        ({"flow_name": "x", "state": {"type": "PENDING", "details": {"retriable": "no"}}}, "retriable must be true or false"),
    ],
)  # fmt: skip
def test_out_of_range_and_mistyped_values_are_a_400_naming_them(api, body, says):
    response = api.post("flow_runs/", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["detail"]


def test_a_level_or_cursor_that_is_not_one_is_a_400(api):
    assert api.get("logs/", params={"min_level": "²"}).status_code == 400
    bad_cursor = api.get("flow_runs/", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 400 and "invalid cursor" in bad_cursor.json()["detail"]


def test_concurrent_creates_with_one_idempotency_key_make_one_run(api):
    from concurrent.futures import ThreadPoolExecutor

    key = uuid.uuid4().hex
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: api.post("flow_runs/", json={"flow_name": "idem-race", "idempotency_key": key}),
                                range(16)))  # fmt: skip
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["flow_run"]["id"] for a in answers}) == 1


def test_a_chunked_body_without_content_length_is_read(live_server, make_token):
    import httpx

    def chunks():
        yield b'{"name": '
        yield b'"chunked-flow"}'

    response = httpx.post(f"{live_server}/api/flows/", content=chunks(),
                          headers={"Authorization": f"Bearer {make_token()}", "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code in (200, 201), response.text
    assert response.json()["name"] == "chunked-flow"


def test_a_log_batch_sent_twice_with_one_idempotency_key_is_stored_once(api):
    run_id = flow_run(api)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    assert api.post("logs/", json=[line(run_id, 1)], headers=headers).json() == {"created": 1}
    assert api.post("logs/", json=[line(run_id, 1)], headers=headers).json() == {"created": 0}
    assert len(api.get("logs/", params={"flow_run": run_id}).json()["results"]) == 1
