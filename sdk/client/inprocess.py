"""The in-process transport: the orchestrator's services called in this process.

Calls from the main thread (where a flow called from a script runs) execute
inline on the main thread's database connection. Calls from any other thread
(task runner workers, async code) are handed to one dedicated orchestrator
thread that owns its own connection: Django connections belong to a thread, a
worker thread's life is too short to own one, and async code must not run the
ORM on its event loop. One lock serializes both paths, so the process never
contends with itself for SQLite's single writer.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from orchestrator.schemas import OrchestrationResult, State
from sdk.client.base import OrchestrationClient
from sdk.engine.timeouts import shielded

logger = logging.getLogger("runway.client")

T = TypeVar("T")
_STOP = object()


class InProcessClient(OrchestrationClient):
    def __init__(self) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._flow_ids: dict[str, UUID] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="runway-orchestrator", daemon=True)
        self._ready: Future = Future()
        self._thread.start()
        self._ready.result()  # re-raises a failed database set-up here, in the caller

    # --- the orchestrator thread -------------------------------------------------
    def _serve(self) -> None:
        from django.db import connections

        try:
            from sdk.client.database import ensure_database

            ensure_database()
            self._ready.set_result(None)
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        stopping = False
        while not stopping:
            group = [self._requests.get()]
            while len(group) < _GROUP_MAX and group[-1] is not _STOP:  # what queued up while the last group ran
                try:
                    group.append(self._requests.get_nowait())
                except queue.Empty:
                    break
            if group[-1] is _STOP:
                stopping = True
                group.pop()
                if not group:
                    break
            with self._lock:
                answers = _serve_group(group) if len(group) > 1 else [_serve_one(*group[0][1:])]
            for (reply, _, _), answer in zip(group, answers):
                reply.put(answer)
        connections.close_all()

    def _call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """Run `fn` on the orchestrator thread and wait for it.

        A C-level SimpleQueue hand-off costs a fraction of a concurrent.futures.Future's
        condition locks.
        """
        current = threading.current_thread()
        if current is self._thread:
            return fn(**kwargs)
        if current is threading.main_thread() and not _loop_running():
            with shielded(), self._lock:  # inline: a hand-off costs two thread wake-ups, a third of a call
                ok, value = _serve_one(fn, kwargs)
            if not ok:
                raise value
            return value
        # A reply queue per call: if the wait below is interrupted (a task timeout injected into
        # this thread), the late reply must not be read as the answer to this thread's next call.
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self._requests.put((reply, fn, kwargs))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    # --- the interface -------------------------------------------------------------
    def create_flow(self, name: str) -> UUID:
        if name not in self._flow_ids:
            from orchestrator.runs.services import flow_get_or_create

            self._flow_ids[name] = self._call(flow_get_or_create, name=name).id
        return self._flow_ids[name]

    def create_flow_run(self, *, flow_id: UUID, name: str, state: State, **fields: Any) -> tuple[UUID, OrchestrationResult]:
        from orchestrator.runs.services import flow_run_create

        run, result = self._call(flow_run_create, flow_id=flow_id, name=name, state=state, **fields)
        return run.id, result

    def create_task_run(self, *, flow_run_id: UUID | None, task_key: str, dynamic_key: str, name: str, state: State, **fields: Any) -> tuple[UUID, OrchestrationResult]:
        run = {"flow_run_id": flow_run_id, "task_key": task_key, "dynamic_key": dynamic_key, "name": name, "state": state}
        return self.create_task_runs([{**run, **fields}])[0]  # the batch service builds no model instance

    def create_task_runs(self, runs: list[dict[str, Any]]) -> list[tuple[UUID, OrchestrationResult]]:
        from orchestrator.runs.services import task_runs_create

        return self._call(task_runs_create, runs=runs)

    def set_flow_run_state(self, flow_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
        from orchestrator.runs.services import flow_run_set_state

        return self._call(flow_run_set_state, flow_run_id=flow_run_id, state=_keyed(state), force=force)

    def set_task_run_state(self, task_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
        from orchestrator.runs.services import task_run_set_state

        return self._call(task_run_set_state, task_run_id=task_run_id, state=_keyed(state), force=force)

    def set_flow_run_name(self, flow_run_id: UUID, name: str) -> None:
        from orchestrator.runs.services import flow_run_set_name

        self._call(flow_run_set_name, flow_run_id=flow_run_id, name=name)

    def set_task_run_name(self, task_run_id: UUID, name: str) -> None:
        from orchestrator.runs.services import task_run_set_name

        self._call(task_run_set_name, task_run_id=task_run_id, name=name)

    def get_task_run_states(self, task_run_ids: list[UUID], final_only: bool = False) -> dict[UUID, State]:
        from orchestrator.runs.selectors import task_run_current_states

        return self._call(task_run_current_states, task_run_ids=task_run_ids, final_only=final_only)

    def get_final_task_run_states_since(self, flow_run_id: UUID, since: datetime | None) -> list[tuple[UUID, State]]:
        from orchestrator.runs.selectors import task_run_final_states_since

        return self._call(task_run_final_states_since, flow_run_id=flow_run_id, since=since)

    def claim_task_run(self, task_run_id: UUID, *, worker: str, hostname: str, pid: int | None,
                       dispatch: dict[str, Any] | None) -> tuple[str, str]:  # fmt: skip
        from django.conf import settings

        from orchestrator.runs.claims import task_run_claim

        claim = self._call(task_run_claim, task_run_id=task_run_id, worker=worker, hostname=hostname, pid=pid,
                           dispatch=dispatch, timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT)  # fmt: skip
        return claim.status, claim.reason

    def claim_and_start_task_run(self, task_run_id: UUID, state: State, *, worker: str, hostname: str,
                                 pid: int | None, dispatch: dict[str, Any] | None) -> tuple[str, str, OrchestrationResult | None]:  # fmt: skip
        from django.conf import settings

        from orchestrator.runs.claims import task_run_claim_and_start

        claim, answer = self._call(task_run_claim_and_start, task_run_id=task_run_id, state=_keyed(state),
                                   worker=worker, hostname=hostname, pid=pid, dispatch=dispatch,
                                   timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT)  # fmt: skip
        return claim.status, claim.reason, answer

    def create_deployment(self, **fields: Any) -> tuple[UUID, bool]:
        from orchestrator.deployments.services import deployment_create

        deployment, created = self._call(deployment_create, **fields)
        return deployment.id, created

    def release_task_run(self, task_run_id: UUID, *, worker: str) -> bool:
        from orchestrator.runs.claims import task_run_release

        return self._call(task_run_release, task_run_id=task_run_id, worker=worker)

    def heartbeat_task_runs(self, task_run_ids: list[UUID], worker: str) -> int:
        from orchestrator.runs.claims import task_run_heartbeat

        return self._call(task_run_heartbeat, task_run_ids=task_run_ids, worker=worker)

    def sweep_lost_task_runs(self, task_run_ids: list[UUID] | None = None) -> list[dict[str, Any]]:
        from django.conf import settings

        from orchestrator.runs.claims import task_runs_sweep_lost

        return self._call(task_runs_sweep_lost, timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT, task_run_ids=task_run_ids)

    def read_flow_run(self, flow_run_id: UUID) -> dict[str, Any]:
        from orchestrator.runs.selectors import flow_run_get, state_from_row

        def read() -> dict[str, Any]:
            run = flow_run_get(flow_run_id=flow_run_id)
            return {"name": run.name, "parameters": run.parameters, "tags": run.tags, "deployment_id": run.deployment_id,
                    "run_count": run.run_count, "run_input": run.run_input,
                    "parent_flow_run_id": run.parent_flow_run_id, "state": state_from_row(run.state) if run.state_id else None}  # fmt: skip

        return self._call(read)

    def cancel_flow_run(self, flow_run_id: UUID) -> OrchestrationResult:
        from orchestrator.runs.services import flow_run_cancel

        return self._call(flow_run_cancel, flow_run_id=flow_run_id, by="the SDK")

    def pause_flow_run(self, flow_run_id: UUID, *, key: str, timeout_seconds: float, reschedule: bool,
                       input_schema: dict[str, Any] | None, from_state_id: str | None) -> tuple[State, bool, Any]:  # fmt: skip
        from orchestrator.runs.pauses import flow_run_pause

        answer = self._call(flow_run_pause, flow_run_id=flow_run_id, key=key, timeout_seconds=timeout_seconds,
                            reschedule=reschedule, input_schema=input_schema, from_state_id=from_state_id)  # fmt: skip
        return answer.result.state, answer.resumed, answer.value

    def resume_flow_run(self, flow_run_id: UUID, run_input: Any = None) -> OrchestrationResult:
        from orchestrator.runs.pauses import flow_run_resume

        return self._call(flow_run_resume, flow_run_id=flow_run_id, run_input=run_input, by="the SDK")

    def create_deployment_run(self, deployment: str, *, parameters: dict[str, Any] | None = None,
                              parent_flow_run_id: UUID | None = None, idempotency_key: str | None = None,
                              scheduled_time: datetime | None = None) -> UUID:  # fmt: skip
        from orchestrator.deployments.services import deployment_run_create

        run = self._call(deployment_run_create, ref=deployment, parameters=parameters, scheduled_time=scheduled_time,
                         parent_flow_run_id=parent_flow_run_id, idempotency_key=idempotency_key)  # fmt: skip
        return run.id

    def claim_flow_run(self, flow_run_id: UUID, *, worker: str, hostname: str, pid: int | None) -> tuple[str, str, dict[str, Any]]:
        from django.conf import settings

        from orchestrator.deployments.agents import flow_run_claim

        claim = self._call(flow_run_claim, flow_run_id=flow_run_id, worker=worker, hostname=hostname, pid=pid,
                           timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT)  # fmt: skip
        return claim.status, claim.reason, claim.run

    def heartbeat_flow_runs(self, flow_run_ids: list[UUID], worker: str) -> int:
        from orchestrator.deployments.agents import flow_run_heartbeat

        return self._call(flow_run_heartbeat, flow_run_ids=flow_run_ids, worker=worker)

    def flow_run_process_exited(self, flow_run_id: UUID, *, worker: str, why: str) -> str:
        from orchestrator.deployments.agents import flow_run_process_exited

        return self._call(flow_run_process_exited, flow_run_id=flow_run_id, worker=worker, why=why)

    def write_logs(self, logs: list[dict[str, Any]], batch_key: str | None = None) -> None:
        from orchestrator.runs.services import logs_create

        self._call(logs_create, logs=logs, batch_key=batch_key)

    def read_secret(self, name: str) -> str:
        from orchestrator.secrets.services import secret_value

        return self._call(secret_value, name=name, by=f"the SDK (pid {os.getpid()})")

    def set_secret(self, name: str, value: str, *, overwrite: bool = True) -> None:
        from orchestrator.secrets.services import secret_set

        self._call(secret_set, name=name, value=value, overwrite=overwrite)

    def runs_in_progress_on_host(self, hostname: str) -> list[tuple[str, UUID, int | None]]:
        from orchestrator.runs.selectors import runs_in_progress_on_host

        return self._call(runs_in_progress_on_host, hostname=hostname)

    def close(self) -> None:
        if self._thread.is_alive():
            self._requests.put(_STOP)
            self._thread.join(timeout=10)
        if threading.current_thread() is threading.main_thread():
            from django.db import connections

            connections.close_all()


_GROUP_MAX = 64


def _serve_one(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[bool, Any]:
    """(True, answer) or (False, the exception). A call the database failed for operational reasons
    (a lost connection: a restarted or failed-over server, a terminated backend; a deadlock or
    serialization failure) runs again, on a new connection if need be, with backoff, for up to
    RUNWAY_API_RETRY_SECONDS: its transaction was rolled back, or, for a state proposal whose
    answer was lost after the commit, its transition key makes the repeat an answer, not a
    second write."""
    from django.db import connection

    from sdk.settings import get_settings

    delay, deadline = 0.05, None
    while True:
        try:
            return True, fn(**kwargs)
        except _database_errors() as exc:
            if connection.in_atomic_block:
                return False, exc  # the group's transaction failed: each of its calls runs again alone
            deadline = deadline or time.monotonic() + get_settings().api_retry_seconds
            if time.monotonic() + delay > deadline:
                return False, exc
            logger.warning("the database failed (%s); retrying in %.2f s", str(exc).strip(), delay)
            if _connection_lost(connection):
                connection.close()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        except BaseException as exc:  # handed to the caller, which re-raises it
            return False, exc


def _database_errors() -> tuple[type[Exception], ...]:
    """The operational ones, Django's and psycopg's own (orchestrator/runs/store.py runs some
    statements on the driver's cursor); not integrity or programming errors."""
    from django.db import InterfaceError, OperationalError

    try:
        import psycopg
    except ImportError:
        return OperationalError, InterfaceError
    return OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError


def _connection_lost(connection: Any) -> bool:
    """Whether the driver's connection is broken (psycopg marks it; an SQLite file has none to lose).
    Django's `is_usable()` cannot tell: with a pool it answers for a fresh connection."""
    raw = connection.connection
    return raw is None or bool(getattr(raw, "broken", False) or getattr(raw, "closed", False))


def _keyed(state: State) -> State:
    """The proposal with a transition key, so that running it again after a lost connection is safe."""
    if not state.details.transition_key:
        state.details.transition_key = uuid.uuid4().hex
    return state


def _serve_group(group: list[tuple[Any, Callable[..., Any], dict[str, Any]]]) -> list[tuple[bool, Any]]:
    """Calls that queued up together, in one transaction: one commit, and no answer before it.

    Each service's own transaction becomes a savepoint, so a call that fails
    undoes only itself. If the database itself fails (an aborted transaction, a
    failed commit), nothing of the group was stored: every call runs again alone.
    """
    from django.db import DatabaseError, transaction

    class _Retry(Exception):
        pass

    try:
        with transaction.atomic():
            answers = [_serve_one(fn, kwargs) for _, fn, kwargs in group]
            if any(not ok and isinstance(value, DatabaseError) for ok, value in answers):
                raise _Retry
        return answers
    except Exception:
        return [_serve_one(fn, kwargs) for _, fn, kwargs in group]


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
