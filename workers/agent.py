"""Agents: `celery worker -Q <work queue>` processes that run deployments' flow runs.

Each worker's main process, every RUNWAY_RELEASE_SECONDS, releases the due runs
of the work queues it consumes, as many as it has free pool processes for,
highest priority queue first (orchestrator/deployments/agents.py holds the rules
and the row locks), and sends each released run's id to its queue. The pool
process that receives the message claims the run, then runs the deployment's
stored code in a child process (workers/flow_process.py): each run gets a process
of its own, so two code versions of one flow never share a module, and a run can
be stopped without stopping the worker. While the child runs, the pool
process sends heartbeats; if the child ends without finishing the run (killed,
out of memory), the run is Crashed and retried if its deployment allows.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any
from uuid import UUID

import billiard
from celery import bootsteps
from celery.signals import celeryd_after_setup
from django.conf import settings

from workers.celery import app

logger = logging.getLogger("runway.agent")
TASK_NAME = "runway.run_flow_run"
# Runs start from a fork server with Django and the SDK imported (workers/flow_process.py);
# each pool process starts its own on its first run. billiard is Celery's fork of
# multiprocessing: unlike the standard library's, it lets a pool process have children.
_processes = billiard.get_context("forkserver")
_processes.set_forkserver_preload(["workers.flow_process"])


@app.task(name=TASK_NAME, bind=True)
def run_flow_run(self, body: dict) -> None:
    """Claim the released run body["flow_run_id"] and run it to its end in a child process."""
    from sdk.client import get_client
    from sdk.engine.hosts import hostname

    client, run_id = get_client(), UUID(body["flow_run_id"])
    worker = f"{self.request.hostname or 'celery'}/{os.getpid()}"
    status, reason, run = client.claim_flow_run(run_id, worker=worker, hostname=hostname(), pid=os.getpid())
    if status != "claimed":
        logger.info("not running flow run %s (%s): %s", run_id, status, reason)
        return
    logger.info("running flow run %s of deployment %s (code %s)", run_id, run["deployment"], run["code_version"][:12])
    try:
        code = _run_in_child(client, run_id, worker, run)
    except Exception as exc:  # the run could not be started: it ends Crashed, saying why
        client.flow_run_process_exited(run_id, worker=worker, why=f"Crashed: the agent could not run it: {exc!r}")
        raise
    if code != 0:
        why = f"Crashed: the flow run's process exited with {_exit_text(code)} before the run finished"
        state = client.flow_run_process_exited(run_id, worker=worker, why=why)
        logger.error("flow run %s: process exited with %s; the run is %s", run_id, _exit_text(code), state or "?")
    else:  # the run finished, or waits (a flow's retry delay ended by a stop): give it back either way
        client.flow_run_process_exited(run_id, worker=worker, why="the flow run's process ended")
    _release_next(sorted(self.app.amqp.queues.consume_from))


def _release_next(queues: list[str]) -> None:
    """This process is free again: release the next due run of this agent's queues (highest
    priority first) now rather than at the next look, so busy queues' runs follow each other
    without a pause."""
    from orchestrator.deployments import agents

    for item in agents.release_due_runs(queue_names=queues, budget=1):
        send(item.flow_run_id, item.queue)


def _run_in_child(client: Any, run_id: UUID, worker: str, run: dict[str, Any]) -> int:
    """Run the flow run in a child process, sending heartbeats meanwhile; answer its exit code."""
    from workers.flow_process import run_child

    child = _processes.Process(target=run_child, args=(str(run_id), run["code_path"], run["entrypoint"], os.getpid()),
                               name=f"runway-flow-run-{run_id}")  # fmt: skip
    stop = threading.Event()
    # Beating starts before the child does: the first child of a pool process also starts the fork server.
    beats = threading.Thread(target=_beat, args=(client, run_id, worker, stop, child), name="runway-agent-heartbeat", daemon=True)
    beats.start()
    try:
        child.start()
        child.join()
        return child.exitcode
    except BaseException:  # the worker is stopping this task: the child goes with it
        _kill(child)
        child.join()
        raise
    finally:
        stop.set()
        beats.join()


def _beat(client: Any, run_id: UUID, worker: str, stop: threading.Event, child: Any) -> None:
    """Every RUNWAY_HEARTBEAT_SECONDS until `stop`, tell the orchestrator this agent still runs the
    run. If it answers that the run is no longer this agent's (it was presumed dead and the run
    went elsewhere), stop the child: the run must not go on twice. A run cancelled meanwhile is
    stopped by its own process; if it is still running RUNWAY_CANCEL_GRACE_SECONDS after the agent
    saw it Cancelling, the child is killed (and the run recorded Cancelled when it exits)."""
    cancelling_since: float | None = None
    while not stop.wait(settings.RUNWAY_HEARTBEAT_SECONDS):
        try:
            held = client.heartbeat_flow_runs([run_id], worker)
            if held and cancelling_since is None and _is_cancelling(client, run_id):
                cancelling_since = time.monotonic()
        except Exception:  # the orchestrator is briefly unreachable: the next beat may pass
            logger.warning("heartbeat for flow run %s failed", run_id, exc_info=True)
            continue
        overdue = cancelling_since is not None and time.monotonic() - cancelling_since >= settings.RUNWAY_CANCEL_GRACE_SECONDS
        if not held or overdue:
            why = "was cancelled and has not stopped by itself" if held else "is no longer held by this agent (presumed dead)"
            logger.error("flow run %s %s; stopping its process", run_id, why)
            _kill(child)
            return


def _kill(child: Any) -> None:
    """SIGKILL the run's process (billiard's Process has terminate() but no kill())."""
    if child.pid is None:
        return
    try:
        os.kill(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # it has just ended by itself
        pass


def _is_cancelling(client: Any, run_id: UUID) -> bool:
    state = client.read_flow_run(run_id)["state"]
    return state is not None and state.type.value == "CANCELLING"


def _exit_text(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"code {code}"


# --- releasing due runs, in each worker's main process ---------------------------------------
def release_due_runs(worker: Any) -> None:
    """Release as many due runs of this worker's queues as it has room for, and send them."""
    from celery.worker import state
    from django.db import close_old_connections

    from orchestrator.deployments import agents

    try:
        queues = served_queues(worker)
        if not queues:
            return
        room = worker.concurrency - len(state.active_requests) - agents.unclaimed_count(queue_names=queues)
        released = agents.release_due_runs(queue_names=queues, budget=room) if room > 0 else []
        released += agents.unclaimed_runs_to_resend(older_than=settings.RUNWAY_RELEASE_RESEND_SECONDS, queue_names=queues)
        for item in released:
            send(item.flow_run_id, item.queue)
    except Exception:
        logger.exception("releasing due flow runs failed; trying again in %s s", settings.RUNWAY_RELEASE_SECONDS)
    finally:
        close_old_connections()


def served_queues(worker: Any) -> list[str]:
    """The Celery queues this worker consumes (its -Q), which are the work queues it serves."""
    return sorted(worker.app.amqp.queues.consume_from)


def send(flow_run_id: UUID, queue: str) -> None:
    run_flow_run.apply_async(args=[{"flow_run_id": str(flow_run_id)}], queue=queue)


class ReleaseDueRuns(bootsteps.StartStopStep):
    """A worker bootstep: `release_due_runs` every RUNWAY_RELEASE_SECONDS."""

    requires = {"celery.worker.components:Timer", "celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_ref = None

    def start(self, worker: Any) -> None:
        self.timer_ref = worker.timer.call_repeatedly(settings.RUNWAY_RELEASE_SECONDS, release_due_runs,
                                                      args=(worker,), priority=10)  # fmt: skip

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()


@celeryd_after_setup.connect
def _serve_system_queue(sender: str, instance: Any, **_: Any) -> None:
    """Every worker also consumes Runway's system queue (RUNWAY_SYSTEM_QUEUE), where beat sends its
    jobs: `celery worker -Q etl-queue` alone is enough to run schedules. (Not the default queue of
    task runs: an agent whose processes all run flows must not take a task run a flow waits for.)"""
    queues = instance.app.amqp.queues
    if queues.consume_from and settings.RUNWAY_SYSTEM_QUEUE not in queues.consume_from:
        queues.select_add(settings.RUNWAY_SYSTEM_QUEUE)
