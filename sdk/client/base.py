"""The one interface through which the SDK reaches the orchestrator.

Two transports implement it: in-process (calls the orchestrator's services in
this process; the default) and HTTP (a later layer). Arguments and answers are
plain data and the shared schemas, so both transports behave the same.
"""
from __future__ import annotations

import abc
from datetime import datetime
from typing import Any
from uuid import UUID

from orchestrator.schemas import OrchestrationResult, State


class OrchestrationClient(abc.ABC):
    @abc.abstractmethod
    def create_flow(self, name: str) -> UUID:
        """The id of the flow named `name`, creating it on first use."""

    @abc.abstractmethod
    def create_flow_run(self, *, flow_id: UUID, name: str, state: State, **fields: Any) -> tuple[UUID, OrchestrationResult]:
        """Create a flow run in `state`; fields: parameters, tags, parent_flow_run_id, empirical_policy, hostname, pid."""

    @abc.abstractmethod
    def create_task_run(self, *, flow_run_id: UUID | None, task_key: str, dynamic_key: str, name: str, state: State, **fields: Any) -> tuple[UUID, OrchestrationResult]:
        """Create a task run, or find the one a retried flow run already made under this key."""

    def create_task_runs(self, runs: list[dict[str, Any]]) -> list[tuple[UUID, OrchestrationResult]]:
        """Create several task runs at once (the runs of a `task.map()`), in one transaction where the transport can.

        Each item of `runs` holds `create_task_run`'s keyword arguments (flow_run_id,
        task_key, dynamic_key, name, state, and optionally tags, empirical_policy,
        task_inputs, cache_key, hostname, pid, run_id, then). Returns, in the items'
        order, each run's id and the answer to its last proposal, as `create_task_run`
        does. This default calls `create_task_run` once per item; transports override
        it with one round trip.
        """
        return [self.create_task_run(**run) for run in runs]

    @abc.abstractmethod
    def set_flow_run_state(self, flow_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
        """Propose a state for a flow run; the answer says what the run's state is now."""

    @abc.abstractmethod
    def set_task_run_state(self, task_run_id: UUID, state: State, force: bool = False) -> OrchestrationResult:
        """Propose a state for a task run."""

    @abc.abstractmethod
    def set_flow_run_name(self, flow_run_id: UUID, name: str) -> None:
        """Rename a flow run (its flow_run_name, made in the run's context)."""

    @abc.abstractmethod
    def set_task_run_name(self, task_run_id: UUID, name: str) -> None:
        """Rename a task run (a task_run_name made from upstream results, known once they are)."""

    @abc.abstractmethod
    def get_task_run_states(self, task_run_ids: list[UUID], final_only: bool = False) -> dict[UUID, State]:
        """The current state of each of these task runs (runs another process executes are watched so);
        with final_only, only of those that are final."""

    @abc.abstractmethod
    def get_final_task_run_states_since(self, flow_run_id: UUID, since: datetime | None) -> list[tuple[UUID, State]]:
        """A flow run's task runs whose state became final at or after `since` (server time), oldest first."""

    @abc.abstractmethod
    def claim_task_run(self, task_run_id: UUID, *, worker: str, hostname: str, pid: int | None,
                       dispatch: dict[str, Any] | None) -> tuple[str, str]:  # fmt: skip
        """Make `worker` the holder of a task run before running it: ("claimed" | "held" | "finished", why)."""

    @abc.abstractmethod
    def claim_and_start_task_run(self, task_run_id: UUID, state: State, *, worker: str, hostname: str,
                                 pid: int | None, dispatch: dict[str, Any] | None) -> tuple[str, str, OrchestrationResult | None]:  # fmt: skip
        """Claim a task run and propose `state` (Running) at once: (status, why, the answer if claimed)."""

    @abc.abstractmethod
    def create_deployment(self, **fields: Any) -> tuple[UUID, bool]:
        """Create or replace a deployment (the fields of `deployment_create`); returns (id, created)."""

    @abc.abstractmethod
    def release_task_run(self, task_run_id: UUID, *, worker: str) -> bool:
        """`worker` gives back a claimed run it has not started, to be claimed again when it is sent again."""

    @abc.abstractmethod
    def heartbeat_task_runs(self, task_run_ids: list[UUID], worker: str) -> int:
        """Tell the orchestrator `worker` still runs these task runs; returns how many it still holds."""

    @abc.abstractmethod
    def sweep_lost_task_runs(self, task_run_ids: list[UUID] | None = None) -> list[dict[str, Any]]:
        """Crash (and retry if they may) the runs whose worker went quiet; returns the dispatches to send again."""

    @abc.abstractmethod
    def read_flow_run(self, flow_run_id: UUID) -> dict[str, Any]:
        """A flow run's name, parameters, tags, parent_flow_run_id, deployment_id and current `state`."""

    @abc.abstractmethod
    def cancel_flow_run(self, flow_run_id: UUID) -> OrchestrationResult:
        """Cancel a flow run: Cancelled at once if it has not started, else Cancelling (its process stops it)."""

    @abc.abstractmethod
    def pause_flow_run(self, flow_run_id: UUID, *, key: str, timeout_seconds: float, reschedule: bool,
                       input_schema: dict[str, Any] | None, from_state_id: str | None) -> tuple[State, bool, Any]:  # fmt: skip
        """The run's code pauses it: (its state now, whether this pause was resumed already, the input given)."""

    @abc.abstractmethod
    def resume_flow_run(self, flow_run_id: UUID, run_input: Any = None) -> OrchestrationResult:
        """Resume a Paused run with the input it waits for."""

    @abc.abstractmethod
    def create_deployment_run(self, deployment: str, *, parameters: dict[str, Any] | None = None,
                              parent_flow_run_id: UUID | None = None, idempotency_key: str | None = None,
                              scheduled_time: datetime | None = None) -> UUID:  # fmt: skip
        """A Scheduled run of `deployment` ("flow/deployment" or id) with these parameters over its defaults."""

    @abc.abstractmethod
    def claim_flow_run(self, flow_run_id: UUID, *, worker: str, hostname: str, pid: int | None) -> tuple[str, str, dict[str, Any]]:
        """An agent claims a released deployment run: (status, why, what to run when claimed)."""

    @abc.abstractmethod
    def heartbeat_flow_runs(self, flow_run_ids: list[UUID], worker: str) -> int:
        """The agent `worker` still runs these flow runs; returns how many it still holds."""

    @abc.abstractmethod
    def flow_run_process_exited(self, flow_run_id: UUID, *, worker: str, why: str) -> str:
        """The agent's process for the run ended: an unfinished run is Crashed (retried if it may be)."""

    @abc.abstractmethod
    def write_logs(self, logs: list[dict[str, Any]], batch_key: str | None = None) -> None:
        """Store a batch of log lines; written again under the same `batch_key` (a retry after an
        answer was lost), it is not stored twice."""

    @abc.abstractmethod
    def read_secret(self, name: str) -> str:
        """The decrypted value of the secret `name`; ObjectNotFound names an unknown one.
        Over HTTP it needs a write-scoped token (a read-only one is refused)."""

    @abc.abstractmethod
    def set_secret(self, name: str, value: str, *, overwrite: bool = True) -> None:
        """Store `value` encrypted under `name`; without `overwrite` an existing name is InvalidInput."""

    @abc.abstractmethod
    def runs_in_progress_on_host(self, hostname: str) -> list[tuple[str, UUID, int | None]]:
        """("flow"|"task", id, pid) of unfinished runs started on `hostname`."""

    def close(self) -> None:
        """Release connections and threads; the client is unusable afterwards."""
