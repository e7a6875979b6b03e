"""The process in which an agent runs one deployment's flow run.

Agents start these processes from a fork server (multiprocessing's "forkserver"
start method) that has already imported Django and the SDK, so a run starts in
tens of milliseconds instead of the most of a second a new interpreter takes,
and each run still gets a process of its own: user code is imported fresh in
each (two code versions of a flow never share a module), and a run can be
stopped without stopping the worker. This module is the fork server's preload.

The process checks the deployment's code and entrypoint before it imports anything
(orchestrator/deployments/entrypoints.py: under RUNWAY_DEPLOYMENT_ROOTS, a @flow of
the stored code), loads the flow from that stored copy and runs
the existing flow run through the ordinary engine (the same path as calling the
flow). It exits 0 whatever the run's outcome, which is in the run's states; any
other exit means the run could not be run to its end.
"""
from __future__ import annotations

import inspect
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from uuid import UUID

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
import django  # noqa: E402
from django.apps import apps  # noqa: E402

if not apps.ready:  # in the fork server; an agent's pool process has Django set up already
    django.setup()

from orchestrator.deployments.entrypoints import EntrypointRefused, deployment_code_check  # noqa: E402
from sdk.client import get_client  # noqa: E402
from sdk.client.inprocess import pid_alive  # noqa: E402
from sdk.engine.calls import run_flow_run  # noqa: E402  (imported once, in the fork server)
from sdk.engine.propose import propose_now  # noqa: E402
from sdk.entrypoints import load  # noqa: E402
from sdk.flows import Flow  # noqa: E402
from sdk.states import Crashed  # noqa: E402

WATCH_SECONDS = 0.2


def run_child(flow_run_id: str, code_path: str, entrypoint: str, agent_pid: int) -> None:
    """The fork server's child: run the flow run, then exit (0 whatever the run's outcome)."""
    _die_with_agent(agent_pid)
    try:
        # Before anything is imported: the code is under RUNWAY_DEPLOYMENT_ROOTS and the entrypoint a @flow of it.
        deployment_code_check(code_path=code_path, entrypoint=entrypoint)
        os.chdir(code_path)  # the flow's relative paths are those of its stored code
        flow = load(_reference(code_path, entrypoint))
        if not isinstance(flow, Flow):
            raise TypeError(f"{entrypoint} is not a @flow (got {type(flow).__name__})")
        _check_defined_in(flow, code_path, entrypoint)
    except Exception as exc:  # recorded on the run, which then ends: starting it again would fail again
        traceback.print_exc()
        why = f"Crashed: the flow could not be loaded from its deployment's code in {code_path}: {type(exc).__name__}: {exc}"
        propose_now(get_client(), Crashed(message=why), flow_run_id=UUID(flow_run_id))
        sys.exit(2)
    run_flow_run(flow, UUID(flow_run_id))


def _check_defined_in(flow: Flow, code_path: str, entrypoint: str) -> None:
    """The flow's function comes from the stored code, not from a module of that name imported earlier."""
    source = Path(inspect.getsourcefile(flow.fn) or "").resolve()
    if not source.is_relative_to(Path(code_path).resolve()):
        raise EntrypointRefused(f"entrypoint {entrypoint!r} loaded a flow defined in {source}, outside the "
                                f"deployment's code {code_path}")  # fmt: skip


def _reference(code_path: str, entrypoint: str) -> str:
    """The entrypoint inside the stored code: a file relative to it, or a module importable from it."""
    where, _, name = entrypoint.rpartition(":")
    if where.endswith(".py"):
        return f"{Path(code_path, where)}:{name}"
    sys.path.insert(0, code_path)  # the stored copy comes before any other module of that name
    return entrypoint


def _die_with_agent(agent_pid: int) -> None:
    """End this process at once if the agent's pool process dies (a worker killed with -9 must not
    leave its runs going on unwatched, to be run a second time elsewhere).

    Its parent is the fork server, which outlives the agent while this process lives, so a
    watchdog thread looks at the agent instead."""
    if not _alive(agent_pid):
        os._exit(3)

    def watch() -> None:
        while _alive(agent_pid):
            time.sleep(WATCH_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="runway-agent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:  # gone, or no /proc (not Linux): ask the kernel whether the pid exists
        return pid_alive(pid)
