"""Marking Crashed the runs a dead process on this host left behind.

A process killed with SIGKILL cannot record anything. When a Runway process
starts it looks for runs this host had in progress whose process is gone and
marks them Crashed, so no run stays Running forever. (Runs on workers of other
hosts are swept by heartbeats, a later layer.)
"""
from __future__ import annotations

import os

from sdk.client.base import OrchestrationClient
from sdk.engine.hosts import hostname
from sdk.states import Crashed


def crash_orphaned_runs(client: OrchestrationClient) -> int:
    """Propose Crashed for every unfinished run of a process of this host that no longer exists.

    Flow runs first: crashing one takes its unfinished task runs with it, so the
    task runs are listed again afterwards and only those still open are crashed.
    """
    from sdk.client.inprocess import pid_alive

    host = hostname()
    crashed = 0
    for kind in ("flow", "task"):
        for run_kind, run_id, pid in client.runs_in_progress_on_host(host):
            if run_kind != kind or pid is None or pid == os.getpid() or pid_alive(pid):
                continue
            message = f"The process that ran this {kind} run (pid {pid} on {host}) is gone."
            state = Crashed(message=message).to_schema()
            if kind == "flow":
                client.set_flow_run_state(run_id, state, force=True)
            else:
                client.set_task_run_state(run_id, state, force=True)
            crashed += 1
    return crashed
