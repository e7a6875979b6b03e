"""The HTTP transport: the orchestrator's REST API, called with an API token.

Same interface and answers as the in-process transport (errors too: a 404 is
ObjectNotFound, a 400 InvalidInput). One httpx client per process keeps
connections open across threads. Requests are retried with backoff on
connection errors and 5xx answers, for up to RUNWAY_API_RETRY_SECONDS, so a
server restart in the middle of a flow only pauses it. Retrying is safe:
every state proposal carries a transition key, a task run its id and a flow
run an idempotency key, and each batch of log lines an Idempotency-Key header,
so a request the server applied before its answer was lost is answered again,
not applied twice.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.schemas import OrchestrationResult, State
from sdk.client.base import OrchestrationClient
from sdk.exceptions import ApiRequestRefused, OrchestratorUnavailable

logger = logging.getLogger("runway.client")
LOG_BATCH = 1000  # the API's limits per request
TASK_RUN_BATCH = 500
STATES_PER_READ = 100  # ids per query string
_IN_PROGRESS = "PENDING,RUNNING,CANCELLING"


class HttpClient(OrchestrationClient):
    def __init__(self, api_url: str, api_key: str, *, retry_seconds: float = 120.0, timeout: float = 30.0) -> None:
        if not api_key:
            raise ApiRequestRefused(
                f"RUNWAY_API_URL is {api_url!r} but RUNWAY_API_KEY is not set; "
                "create a token with `python manage.py token create --user <you> --name <what for>`"
            )
        self.api_url = api_url.rstrip("/") + "/"
        self.retry_seconds = retry_seconds
        self._flow_ids: dict[str, UUID] = {}
        self._http = httpx.Client(
            base_url=self.api_url, timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                     "User-Agent": "runway-sdk"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )  # fmt: skip

    # --- the interface -------------------------------------------------------------------
    def create_flow(self, name: str) -> UUID:
        if name not in self._flow_ids:
            self._flow_ids[name] = UUID(self._request("POST", "flows/", {"name": name})["id"])
        return self._flow_ids[name]

    def create_flow_run(self, *, flow_id: UUID, name: str, state: State, **fields: Any) -> tuple[UUID, OrchestrationResult]:
        fields.setdefault("idempotency_key", uuid.uuid4().hex)  # a retried create returns the first run
        body = {"flow_id": flow_id, "name": name, "state": _proposal(state), **fields}
        answer = self._request("POST", "flow_runs/", body)
        return UUID(answer["flow_run"]["id"]), OrchestrationResult.from_dict(answer["orchestration"])

    def create_task_run(self, *, flow_run_id: UUID | None, task_key: str, dynamic_key: str, name: str, state: State, **fields: Any) -> tuple[UUID, OrchestrationResult]:
        # The batch endpoint answers with ids and states only: cheaper than the full run of POST task_runs/.
        run = dict(flow_run_id=flow_run_id, task_key=task_key, dynamic_key=dynamic_key, name=name, state=state)
        return self.create_task_runs([{**run, **fields}])[0]

    @staticmethod
    def _task_run_body(*, state: State, run_id: UUID | None = None, then: State | None = None, **fields: Any) -> dict[str, Any]:
        """A new task run as the API takes it; its id is chosen here, so a retried create finds the run."""
        return {"id": run_id or uuid.uuid4(), "state": _proposal(state),
                "then": _proposal(then) if then else None, **fields}  # fmt: skip

    def create_task_runs(self, runs: list[dict[str, Any]]) -> list[tuple[UUID, OrchestrationResult]]:
        answers: list[tuple[UUID, OrchestrationResult]] = []
        for start in range(0, len(runs), TASK_RUN_BATCH):
            body = [self._task_run_body(**run) for run in runs[start : start + TASK_RUN_BATCH]]
            answers += [(UUID(item["id"]), OrchestrationResult.from_dict(item["orchestration"]))
                        for item in self._request("POST", "task_runs/batch/", body)]  # fmt: skip
        return answers

    def set_flow_run_state(self, flow_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
        body = {"state": _proposal(state), "force": force}
        return OrchestrationResult.from_dict(self._request("POST", f"flow_runs/{flow_run_id}/set_state/", body))

    def set_task_run_state(self, task_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
        body = {"state": _proposal(state), "force": force}
        return OrchestrationResult.from_dict(self._request("POST", f"task_runs/{task_run_id}/set_state/", body))

    def set_flow_run_name(self, flow_run_id: UUID, name: str) -> None:
        self._request("PATCH", f"flow_runs/{flow_run_id}/", {"name": name})

    def set_task_run_name(self, task_run_id: UUID, name: str) -> None:
        self._request("PATCH", f"task_runs/{task_run_id}/", {"name": name})

    def get_task_run_states(self, task_run_ids: list[UUID], final_only: bool = False) -> dict[UUID, State]:
        found: dict[UUID, State] = {}
        for start in range(0, len(task_run_ids), STATES_PER_READ):
            ids = ",".join(str(i) for i in task_run_ids[start : start + STATES_PER_READ])
            params = {"ids": ids, **({"final": "true"} if final_only else {})}
            answer = self._request("GET", "task_runs/current_states/", params=params)
            found.update({UUID(run_id): State.from_dict(state) for run_id, state in answer.items()})
        return found

    def get_final_task_run_states_since(self, flow_run_id: UUID, since: datetime | None) -> list[tuple[UUID, State]]:
        params = {"flow_run": str(flow_run_id), **({"since": since.isoformat()} if since else {})}
        answer = self._request("GET", "task_runs/final_states/", params=params)
        return [(UUID(item["id"]), State.from_dict(item["state"])) for item in answer]

    def claim_task_run(self, task_run_id: UUID, *, worker: str, hostname: str, pid: int | None,
                       dispatch: dict[str, Any] | None) -> tuple[str, str]:  # fmt: skip
        body = {"worker": worker, "hostname": hostname, "pid": pid, "dispatch": dispatch}
        answer = self._request("POST", f"task_runs/{task_run_id}/claim/", body)
        return answer["status"], answer["reason"]

    def claim_and_start_task_run(self, task_run_id: UUID, state: State, *, worker: str, hostname: str,
                                 pid: int | None, dispatch: dict[str, Any] | None) -> tuple[str, str, OrchestrationResult | None]:  # fmt: skip
        body = {"worker": worker, "hostname": hostname, "pid": pid, "dispatch": dispatch, "then": _proposal(state)}
        answer = self._request("POST", f"task_runs/{task_run_id}/claim/", body)
        started = answer.get("orchestration")
        return answer["status"], answer["reason"], OrchestrationResult.from_dict(started) if started else None

    def create_deployment(self, **fields: Any) -> tuple[UUID, bool]:
        answer = self._request("POST", "deployments/", fields)
        return UUID(answer["deployment"]["id"]), answer["created"]

    def release_task_run(self, task_run_id: UUID, *, worker: str) -> bool:
        return self._request("POST", f"task_runs/{task_run_id}/release/", {"worker": worker})["released"]

    def heartbeat_task_runs(self, task_run_ids: list[UUID], worker: str) -> int:
        return self._request("POST", "task_runs/heartbeat/", {"worker": worker, "ids": task_run_ids})["held"]

    def sweep_lost_task_runs(self, task_run_ids: list[UUID] | None = None) -> list[dict[str, Any]]:
        return self._request("POST", "task_runs/sweep_lost/", {"ids": task_run_ids})["resend"]

    def read_flow_run(self, flow_run_id: UUID) -> dict[str, Any]:
        run = self._request("GET", f"flow_runs/{flow_run_id}/")
        return {**run, "state": State.from_dict(run["state"]) if run.get("state") else None}

    def cancel_flow_run(self, flow_run_id: UUID) -> OrchestrationResult:
        return OrchestrationResult.from_dict(self._request("POST", f"flow_runs/{flow_run_id}/cancel/", {}))

    def pause_flow_run(self, flow_run_id: UUID, *, key: str, timeout_seconds: float, reschedule: bool,
                       input_schema: dict[str, Any] | None, from_state_id: str | None) -> tuple[State, bool, Any]:  # fmt: skip
        body = {"key": key, "timeout_seconds": timeout_seconds, "reschedule": reschedule,
                "input_schema": input_schema, "from_state_id": from_state_id}  # fmt: skip
        answer = self._request("POST", f"flow_runs/{flow_run_id}/pause/", body)
        return OrchestrationResult.from_dict(answer["orchestration"]).state, answer["resumed"], answer["value"]

    def resume_flow_run(self, flow_run_id: UUID, run_input: Any = None) -> OrchestrationResult:
        return OrchestrationResult.from_dict(self._request("POST", f"flow_runs/{flow_run_id}/resume/", {"run_input": run_input}))

    def create_deployment_run(self, deployment: str, *, parameters: dict[str, Any] | None = None,
                              parent_flow_run_id: UUID | None = None, idempotency_key: str | None = None,
                              scheduled_time: datetime | None = None) -> UUID:  # fmt: skip
        body = {"parameters": parameters or {}, "parent_flow_run_id": parent_flow_run_id,
                "idempotency_key": idempotency_key, "scheduled_time": scheduled_time}  # fmt: skip
        answer = self._request("POST", f"deployments/{self._deployment_id(deployment)}/runs/", body)
        return UUID(answer["id"])

    def _deployment_id(self, ref: str) -> str:
        """The id of a deployment named "flow/deployment" (or given by id)."""
        flow_name, sep, name = ref.rpartition("/")
        if not sep:
            return quote(ref, safe="")
        found = self._request("GET", "deployments/", params={"flow__name": flow_name, "name": name})["results"]
        if not found:
            raise ObjectNotFound(f"deployment {ref!r} does not exist; name it as flow/deployment "
                                 "(list them with `python manage.py deployment ls`)")  # fmt: skip
        return found[0]["id"]

    def claim_flow_run(self, flow_run_id: UUID, *, worker: str, hostname: str, pid: int | None) -> tuple[str, str, dict[str, Any]]:
        body = {"worker": worker, "hostname": hostname, "pid": pid}
        answer = self._request("POST", f"flow_runs/{flow_run_id}/claim/", body)
        return answer["status"], answer["reason"], answer["run"]

    def heartbeat_flow_runs(self, flow_run_ids: list[UUID], worker: str) -> int:
        return self._request("POST", "flow_runs/heartbeat/", {"worker": worker, "ids": flow_run_ids})["held"]

    def flow_run_process_exited(self, flow_run_id: UUID, *, worker: str, why: str) -> str:
        body = {"worker": worker, "why": why}
        return self._request("POST", f"flow_runs/{flow_run_id}/process_exited/", body)["state_name"]

    def write_logs(self, logs: list[dict[str, Any]], batch_key: str | None = None) -> None:
        batch_key = batch_key or uuid.uuid4().hex
        for start in range(0, len(logs), LOG_BATCH):  # a key per request: a retried one is stored once
            key = f"{batch_key}-{start // LOG_BATCH}"
            self._request("POST", "logs/", logs[start : start + LOG_BATCH], headers={"Idempotency-Key": key})

    def read_secret(self, name: str) -> str:
        # A POST: read-only tokens (GET only) cannot read values; retried like any request (it changes nothing).
        return self._request("POST", f"secrets/{quote(name, safe='')}/reveal/", {})["value"]

    def set_secret(self, name: str, value: str, *, overwrite: bool = True) -> None:
        if overwrite:
            self._request("PUT", f"secrets/{quote(name, safe='')}/", {"value": value})
        else:
            self._request("POST", "secrets/", {"name": name, "value": value})

    def runs_in_progress_on_host(self, hostname: str) -> list[tuple[str, UUID, int | None]]:
        found: list[tuple[str, UUID, int | None]] = []
        for kind, path in (("flow", "flow_runs/"), ("task", "task_runs/")):
            query = {"hostname": hostname, "state_type": _IN_PROGRESS, "limit": 500}
            found += [(kind, UUID(run["id"]), run["pid"]) for run in self._pages(path, query)
                      if not run.get("worker")]  # claimed by a Celery worker: its heartbeats watch it  # fmt: skip
        return found

    def close(self) -> None:
        self._http.close()

    # --- requests ------------------------------------------------------------------------
    def _pages(self, path: str, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
        url: str | None = path
        while url:
            page = self._request("GET", url, params=query)
            yield from page["results"]
            url, query = page.get("next"), None

    def _request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> Any:
        """Send until answered: connection errors and 5xx are retried with backoff until the window closes."""
        content = json.dumps(body, default=_jsonable) if body is not None else None
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        while True:
            try:
                response = self._http.request(method, path, content=content, params=params, headers=headers)
                if response.status_code < 500:
                    return _decode(response, method, path)
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                raise OrchestratorUnavailable(
                    f"{method} {self.api_url}{path} kept failing for {self.retry_seconds:g} s ({problem}); "
                    "is the server running? (`python manage.py server`; RUNWAY_API_RETRY_SECONDS sets the window)"
                )
            logger.warning("%s %s failed (%s); retrying in %.1f s", method, path, problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _proposal(state: State) -> dict[str, Any]:
    """The state as sent, with a transition key so a retried request is not applied twice."""
    data = state.to_dict()
    data["details"].setdefault("transition_key", uuid.uuid4().hex)
    return data


def _decode(response: httpx.Response, method: str, path: str) -> Any:
    if response.is_success or response.status_code == 409:  # 409: an illegal transition, answered REJECT
        return response.json()
    try:
        body = response.json()
        detail = (body.get("detail") if isinstance(body, dict) else None) or response.text
    except ValueError:
        detail = response.text
    where = f"{method} /{path.lstrip('/')}"
    if response.is_redirect:
        raise InvalidInput(f"{where}: the server redirects to {response.headers.get('location')!r}; "
                           "set RUNWAY_API_URL to that address (https?)")  # fmt: skip
    if response.status_code in (401, 403):
        raise ApiRequestRefused(f"{where}: the API refused the request ({response.status_code}): {detail}")
    if response.status_code == 404:
        raise ObjectNotFound(detail)
    raise InvalidInput(f"{where}: {detail}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} to the API: {value!r}")
