"""The SDK over HTTP: the same flows give the same results, states and logs as in process,
a server restart mid-flow only pauses it, and a retried request is never applied twice."""
from __future__ import annotations

import json
import re
import socket
import threading
import time

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.sdk.conftest import run_script

EXAMPLE_FLOWS = """
import asyncio, json, sys
sys.path.insert(0, "examples")
from github_stars import github_stars
from concurrent_etl import concurrent_etl
from handled_failure import resilient
from async_flow import crawl
results = [github_stars(["PrefectHQ/prefect", "django/django", "celery/celery"]),
           concurrent_etl(), concurrent_etl(), resilient(), asyncio.run(crawl())]
print(json.dumps(results))
"""


def recorded_history(server: ServerProcess) -> list[dict]:
    """Every flow run of the server's database with its states, task runs and logs, run names normalized."""
    api = httpx.Client(base_url=f"{server.url}/api/", headers={"Authorization": f"Bearer {server.first_token()}"})
    history = []
    runs = api.get("flow_runs/", params={"ordering": "created", "limit": 100}).json()["results"]

    def normalized(line: str) -> str:
        for other in runs:
            line = line.replace(other["name"], "<flow run>")
        return line

    for run in runs:
        tasks = api.get("task_runs/", params={"flow_run": run["id"], "limit": 100}).json()["results"]
        logs = [entry["message"] for entry in api.get("logs/", params={"flow_run": run["id"], "limit": 500}).json()["results"]]
        history.append({
            "flow": run["flow_name"], "parameters": run["parameters"], "parent": bool(run["parent_flow_run_id"]),
            "states": [s["name"] for s in api.get(f"flow_runs/{run['id']}/states/").json()["results"]],
            "tasks": sorted(
                (t["name"], tuple(s["name"] for s in api.get(f"task_runs/{t['id']}/states/").json()["results"]))
                for t in tasks
            ),
            "logs": sorted(normalized(line) for line in logs),
        })  # fmt: skip
    return history


@pytest.mark.slow
def test_the_examples_record_the_same_results_states_and_logs_over_http_as_in_process(tmp_path):
    in_process_home, http_home = tmp_path / "in-process", tmp_path / "http"
    local = run_script(EXAMPLE_FLOWS, home=in_process_home, timeout=120)
    assert local.returncode == 0, local.stderr
    server = ServerProcess(RUNWAY_HOME=str(http_home)).start()
    try:
        remote = run_script(EXAMPLE_FLOWS, home=tmp_path / "client", timeout=120,
                            RUNWAY_API_URL=f"{server.url}/api", RUNWAY_API_KEY=server.first_token())  # fmt: skip
        assert remote.returncode == 0, remote.stderr
        assert not (tmp_path / "client" / "runway.sqlite3").exists()  # nothing went to a local database
        over_http = recorded_history(server)
    finally:
        server.stop()
    assert json.loads(remote.stdout.splitlines()[-1]) == json.loads(local.stdout.splitlines()[-1])
    reader = ServerProcess(RUNWAY_HOME=str(in_process_home)).start()  # serves what the ephemeral runs wrote
    try:
        in_process = recorded_history(reader)
    finally:
        reader.stop()
    assert len(over_http) == 6  # five flow runs and the async flow's subflow
    assert over_http == in_process


@pytest.mark.slow
def test_a_server_restart_during_a_flow_only_pauses_it(tmp_path):
    server = ServerProcess(RUNWAY_HOME=str(tmp_path / "server")).start()
    token = server.first_token()
    flow_code = (
        "import time\nfrom sdk import flow, task\n"
        "@task\ndef step(i):\n    time.sleep(0.2)\n    return i\n"
        "@flow(name='survives-restart')\ndef f():\n    return sum(step(i) for i in range(15))\n"
        "print(f())"
    )
    done: dict = {}
    script = threading.Thread(target=lambda: done.update(result=run_script(
        flow_code, home=tmp_path / "client", timeout=180,
        RUNWAY_API_URL=f"{server.url}/api", RUNWAY_API_KEY=token, RUNWAY_API_RETRY_SECONDS="60")))  # fmt: skip
    script.start()
    time.sleep(1.5)
    server.stop(kill=True)  # mid-flow, without warning
    time.sleep(2)
    restarted = ServerProcess(port=server.port, RUNWAY_HOME=str(tmp_path / "server")).start()
    try:
        script.join(timeout=180)
        result = done["result"]
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == str(sum(range(15)))
        assert "retrying in" in result.stderr  # the client noticed, waited and carried on
        api = httpx.Client(base_url=f"{restarted.url}/api/", headers={"Authorization": f"Bearer {token}"})
        run = api.get("flow_runs/", params={"flow_name": "survives-restart"}).json()["results"][0]
        assert run["state"]["type"] == "COMPLETED"
        for task_run in api.get("task_runs/", params={"flow_run": run["id"], "limit": 100}).json()["results"]:
            names = [s["name"] for s in api.get(f"task_runs/{task_run['id']}/states/").json()["results"]]
            assert names == ["Pending", "Running", "Completed"], (task_run["name"], names)
    finally:
        restarted.stop()


class ResponseDroppingProxy:
    """Forwards HTTP to the server, but for the first request matching `drop` closes the
    connection after the server answered: the request was applied, the client never hears."""

    def __init__(self, target_port: int, drop: str) -> None:
        self.target_port, self.drop, self.dropped = target_port, drop.encode(), 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            while request := _read_message(client):
                upstream.sendall(request)
                response = _read_message(upstream)
                if self.drop in request.split(b"\r\n", 1)[0] and not self.dropped:
                    self.dropped += 1
                    return  # the server applied it; the answer is lost
                client.sendall(response)


def _read_message(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1)) if b"ontent-" in head else 0
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_proposal_whose_answer_was_lost_is_retried_and_written_once(live_server, make_token):
    from sdk.client.http import HttpClient
    from sdk.states import Completed, Pending, Running

    proxy = ResponseDroppingProxy(int(live_server.rsplit(":", 1)[1]), drop="/set_state/")
    client = HttpClient(f"http://127.0.0.1:{proxy.port}/api", make_token(), retry_seconds=30)
    try:
        flow_id = client.create_flow("lost-answers")
        run_id, _ = client.create_flow_run(flow_id=flow_id, name="lost", state=Pending().to_schema())
        answer = client.set_flow_run_state(run_id, Running().to_schema())
        assert proxy.dropped == 1 and answer.status.value == "ACCEPT"
        client.set_flow_run_state(run_id, Completed().to_schema())
    finally:
        client.close()
    api = httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {make_token('read')}"})
    names = [s["name"] for s in api.get(f"flow_runs/{run_id}/states/").json()["results"]]
    assert names == ["Pending", "Running", "Completed"]


def _write_a_batch_twice(client, flow_name: str):
    """A flow run, and one batch of log lines written twice under one key, then once under another."""
    import datetime
    import uuid

    from sdk.states import Pending

    run_id, _ = client.create_flow_run(flow_id=client.create_flow(flow_name), name=flow_name, state=Pending().to_schema())
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    batch = [{"flow_run_id": str(run_id), "level": 20, "name": "runway", "message": f"line {i}", "timestamp": now}
             for i in range(3)]  # fmt: skip
    key = uuid.uuid4().hex
    client.write_logs(batch, batch_key=key)
    client.write_logs(batch, batch_key=key)  # the log writer's retry after an answer was lost
    client.write_logs(batch[:1], batch_key=uuid.uuid4().hex)
    return run_id


def test_a_log_batch_written_again_under_its_key_is_stored_once_in_process(client):
    from orchestrator.runs.models import Log

    run_id = _write_a_batch_twice(client, "log-batch-in-process")
    assert sorted(Log.objects.filter(flow_run_id=run_id).values_list("message", flat=True)) == ["line 0", "line 0", "line 1", "line 2"]


def test_a_log_batch_written_again_under_its_key_is_stored_once_over_http(live_server, make_token):
    from sdk.client.http import HttpClient

    client = HttpClient(f"{live_server}/api", make_token(), retry_seconds=30)
    try:
        run_id = _write_a_batch_twice(client, "log-batch-over-http")
    finally:
        client.close()
    api = httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {make_token('read')}"})
    lines = api.get("logs/", params={"flow_run": str(run_id), "limit": 100}).json()["results"]
    assert sorted(line["message"] for line in lines) == ["line 0", "line 0", "line 1", "line 2"]


def test_the_sdk_without_a_token_or_with_a_bad_one_says_what_to_do(live_server, tmp_path):
    code = "from sdk import flow\n@flow\ndef f(): return 1\nf()"
    missing = run_script(code, home=tmp_path, RUNWAY_API_URL=f"{live_server}/api", RUNWAY_API_KEY="")
    assert missing.returncode != 0 and "RUNWAY_API_KEY is not set" in missing.stderr
    wrong = run_script(code, home=tmp_path, RUNWAY_API_URL=f"{live_server}/api", RUNWAY_API_KEY="rwy_wrong")
    assert wrong.returncode != 0 and "invalid or revoked API token" in wrong.stderr


def test_an_unreachable_server_fails_after_the_retry_window_naming_it(tmp_path):
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    code = "from sdk import flow\n@flow\ndef f(): return 1\nf()"
    done = run_script(code, home=tmp_path, RUNWAY_API_URL=url, RUNWAY_API_KEY="rwy_x", RUNWAY_API_RETRY_SECONDS="1")
    assert done.returncode != 0
    assert f"{url}/" in done.stderr and "is the server running?" in done.stderr
