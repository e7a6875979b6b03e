"""The child process in which an agent runs one deployment's flow run:

    python -m workers.flow_process <flow run id> <code path> <entrypoint> <agent pid>

It loads the flow from the deployment's stored copy of the code and runs the
existing flow run through the ordinary engine (the same path as calling the
flow), then exits 0 whatever the run's outcome: the outcome is in the run's
states. A non-zero exit means the run could not be run to its end.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path
from uuid import UUID

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    flow_run_id, code_path, entrypoint, agent_pid = argv
    _die_with_agent(int(agent_pid))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django

    django.setup()
    from sdk.engine.calls import run_flow_run
    from sdk.entrypoints import load
    from sdk.flows import Flow

    flow = load(_reference(code_path, entrypoint))
    if not isinstance(flow, Flow):
        print(f"{entrypoint} in {code_path} is not a @flow (got {type(flow).__name__})", file=sys.stderr)
        return 2
    run_flow_run(flow, UUID(flow_run_id))
    return 0


def _reference(code_path: str, entrypoint: str) -> str:
    """The entrypoint inside the stored code: a file relative to it, or a module importable from it."""
    where, _, name = entrypoint.rpartition(":")
    if where.endswith(".py"):
        return f"{Path(code_path, where)}:{name}"
    sys.path.insert(0, code_path)  # the stored copy comes before any other module of that name
    return entrypoint


def _die_with_agent(agent_pid: int) -> None:
    """Linux: this process is killed when the agent's pool process dies (a worker killed with -9
    must not leave its runs going on unwatched, to be run a second time elsewhere)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != agent_pid:  # it died before the line above took effect
        os._exit(3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
