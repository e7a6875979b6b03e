"""One agent of check 16 (tests/reliability/test_claims.py), run as its own OS process:

    python -m tests.reliability.claim_agent QUEUE NAME WORKDIR

It does what an agent does to find and take work, with the same functions
(orchestrator/deployments/agents.py, called by workers/agent.py in a worker's main
process and by its pool processes through the in-process client): release due runs
of its queue (`release_due_runs`), then claim each run it has a message for
(`flow_run_claim`). Messages cross between agents as a broker's would when it
redelivers or resends: besides the runs it released, each agent also tries the
released runs nobody has claimed yet. A claimed run is then proposed Running and
Completed, as the flow's process would (following the Pending state it was claimed
in), without running any code: starting 1,000 flow processes on a 2-core machine
would measure process start-up, not claims.

It loops until its queue has no due or unclaimed run left, writing one JSON line per
claim answer and per released run to WORKDIR/NAME.jsonl, and the error, if any, to
WORKDIR/NAME.error (exit status 1). It starts when WORKDIR/go exists, after
writing WORKDIR/NAME.ready.
"""
from __future__ import annotations

import json
import os
import random
import socket
import sys
import time
import traceback
from pathlib import Path

BATCH = 25  # runs released per look, as a worker with 25 free pool processes would


def main(queue: str, name: str, workdir: Path) -> int:
    from sdk.client.database import setup_django

    setup_django()
    from django.db import connection

    connection.ensure_connection()
    (workdir / f"{name}.ready").touch()
    while not (workdir / "go").exists():
        time.sleep(0.01)
    with open(workdir / f"{name}.jsonl", "w") as out:
        try:
            _loop(queue, name, out)
        except BaseException:  # noqa: BLE001 (any error fails the check; the test reads it)
            (workdir / f"{name}.error").write_text(traceback.format_exc())
            return 1
        finally:
            connection.close()
    return 0


def _loop(queue: str, name: str, out) -> None:
    from django.conf import settings

    from orchestrator.deployments import agents
    from orchestrator.runs.models import FlowRun
    from orchestrator.schemas import StateType

    worker, pid, host = f"{name}/{os.getpid()}", os.getpid(), socket.gethostname()
    queued = FlowRun.objects.filter(work_queue_name=queue)
    while True:
        released = [item.flow_run_id for item in agents.release_due_runs(queue_names=[queue], budget=BATCH)]
        for run_id in released:
            out.write(json.dumps({"released": str(run_id)}) + "\n")
        others = list(queued.filter(state_type=StateType.PENDING, worker="").values_list("pk", flat=True)[:BATCH])
        messages = released + [run_id for run_id in random.sample(others, len(others)) if run_id not in released]
        for run_id in messages:
            claim = agents.flow_run_claim(flow_run_id=run_id, worker=worker, hostname=host, pid=pid,
                                          timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT)  # fmt: skip
            out.write(json.dumps({"run": str(run_id), "claim": claim.status, "reason": claim.reason}) + "\n")
            if claim.status == agents.CLAIMED:
                _finish(run_id)
        if not messages and not queued.filter(state_type__in=(StateType.SCHEDULED, StateType.PENDING)).exists():
            return


def _finish(run_id) -> None:
    """What the claimed run's process would propose: Running (following the Pending it was claimed
    in, as the engine does for a deployment's run), then Completed."""
    from orchestrator.runs.models import FlowRun
    from orchestrator.runs.services import flow_run_set_state
    from orchestrator.schemas import SetStateStatus, State, StateDetails, StateType

    pending = FlowRun.objects.values_list("state_id", flat=True).get(pk=run_id)
    running = flow_run_set_state(flow_run_id=run_id, state=State(StateType.RUNNING, details=StateDetails(from_state_id=str(pending))))
    if running.status != SetStateStatus.ACCEPT:
        raise RuntimeError(f"flow run {run_id} claimed but its Running was answered {running}")
    done = State(StateType.COMPLETED, result={"type": "json", "value": None},
                 details=StateDetails(from_state_id=str(running.state.id)))  # fmt: skip
    completed = flow_run_set_state(flow_run_id=run_id, state=done)
    if completed.status != SetStateStatus.ACCEPT:
        raise RuntimeError(f"flow run {run_id} claimed but its Completed was answered {completed}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
