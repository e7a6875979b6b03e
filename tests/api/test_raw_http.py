"""A complete task run driven with plain HTTP requests (the standard library, no SDK): the docs/api.md walk-through."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone


def call(base: str, token: str, method: str, path: str, body=None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}/api/{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_task_run_is_retried_and_completed_through_raw_http(live_server, make_token):
    token = make_token()

    def send(method: str, path: str, body=None, expect: int = 200) -> dict:
        status, answer = call(live_server, token, method, path, body)
        assert status == expect, (path, answer)
        return answer

    flow_run = send("POST", "flow_runs/", {"flow_name": "raw-http", "parameters": {"n": 2}}, 201)["flow_run"]
    assert send("POST", f"flow_runs/{flow_run['id']}/set_state/", {"state": {"type": "RUNNING"}})["status"] == "ACCEPT"

    task_run = send("POST", "task_runs/", {
        "flow_run_id": flow_run["id"], "task_key": "etl.load", "empirical_policy": {"retries": 1, "retry_delay": 0},
    }, 201)["task_run"]  # fmt: skip
    task = f"task_runs/{task_run['id']}/set_state/"

    assert send("POST", task, {"state": {"type": "RUNNING"}})["status"] == "ACCEPT"
    failed = send("POST", task, {"state": {"type": "FAILED", "message": "connection reset"}})
    assert (failed["status"], failed["state"]["name"]) == ("REJECT", "AwaitingRetry")
    retry = send("POST", task, {"state": {"type": "RUNNING"}})
    assert (retry["status"], retry["state"]["name"]) == ("ACCEPT", "Retrying")
    send("POST", "logs/", [{
        "task_run_id": task_run["id"], "flow_run_id": flow_run["id"], "level": 20, "name": "etl",
        "message": "loaded 2 rows", "timestamp": datetime.now(timezone.utc).isoformat(),
    }], 201)  # fmt: skip
    done = send("POST", task, {"state": {"type": "COMPLETED", "result": {"type": "json", "value": 2},
                                         "details": {"transition_key": uuid.uuid4().hex}}})  # fmt: skip
    assert done["status"] == "ACCEPT"
    send("POST", f"flow_runs/{flow_run['id']}/set_state/", {"state": {"type": "COMPLETED"}})

    history = send("GET", f"task_runs/{task_run['id']}/states/")["results"]
    assert [s["name"] for s in history] == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert history[2]["message"] == "connection reset"  # the failure that caused the retry
    detail = send("GET", f"task_runs/{task_run['id']}/")
    assert detail["run_count"] == 2 and detail["state"]["type"] == "COMPLETED"
    logs = send("GET", f"logs/?task_run={task_run['id']}")["results"]
    assert [entry["message"] for entry in logs] == ["loaded 2 rows"]
