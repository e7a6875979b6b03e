"""Workers that die: their runs are found through the missing heartbeats, crashed, and retried elsewhere.

The session runs with a heartbeat every 0.5 s, a 6 s timeout and a sweep every
second (tests/conftest.py); production defaults are 10 s, 30 s and 5 s.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from orchestrator.runs.claims import task_run_claim, task_run_heartbeat, task_runs_sweep_lost
from orchestrator.runs.models import FlowRun, TaskRun
from orchestrator.runs.services import task_run_set_state
from orchestrator.schemas import SetStateStatus, State, StateDetails, StateType
from tests.sdk.conftest import state_names
from tests.workers import flows


def wait_for_lines(path: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {count} lines in {timeout} s")


def run_in_thread(fn, *args) -> dict:
    done: dict = {}

    def target() -> None:
        try:
            done["value"] = fn(*args, return_state=True)
        except BaseException as exc:  # noqa: BLE001 (reported to the test)
            done["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    done["thread"] = thread
    return done


def test_a_run_whose_worker_is_killed_is_crashed_and_retried_on_another_worker(start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    doomed = start_worker(concurrency=1)
    outcome = run_in_thread(flows.survives_a_lost_worker, str(ledger))
    try:
        wait_for_lines(ledger, 1)  # the first attempt is running on the doomed worker
    except AssertionError:
        raise AssertionError(f"{outcome}\n{doomed.output()[-3000:]}") from None
    doomed.kill()
    start_worker(concurrency=1)
    outcome["thread"].join(timeout=90)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"].result() == "done"
    task_run = FlowRun.objects.filter(flow__name="survives-a-lost-worker").latest("created").task_runs.get()
    assert state_names(task_run) == ["Pending", "Running", "Crashed", "AwaitingRetry", "Retrying", "Completed"]
    crashed = task_run.states.get(name="Crashed")
    assert "stopped sending heartbeats" in crashed.message and doomed.name in crashed.message
    assert len(ledger.read_text().splitlines()) == 2  # executions = runs + recorded retries


def test_a_run_without_retries_whose_only_worker_dies_ends_the_flow_in_bounded_time(start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    only = start_worker(concurrency=1)
    outcome = run_in_thread(flows.loses_its_worker, str(ledger))
    wait_for_lines(ledger, 1)
    killed_at = time.monotonic()
    only.kill()
    outcome["thread"].join(timeout=60)
    assert not outcome["thread"].is_alive(), "the flow hangs"
    assert time.monotonic() - killed_at < 30
    state = outcome["value"]
    assert state.is_crashed() or state.is_failed()
    task_run = FlowRun.objects.filter(flow__name="loses-its-worker").latest("created").task_runs.get()
    assert task_run.state_name == "Crashed"
    assert len(ledger.read_text().splitlines()) == 1


@pytest.fixture
def claimed_run(client):
    """A Running task run claimed by worker 'w-old', as a worker leaves it."""
    from sdk.states import Pending

    flow_id = client.create_flow("claims")
    flow_run_id, _ = client.create_flow_run(flow_id=flow_id, name="c", state=Pending().to_schema())
    client.set_flow_run_state(flow_run_id, State(type=StateType.RUNNING))
    run_id, _ = client.create_task_run(flow_run_id=flow_run_id, task_key="m.t", dynamic_key=uuid.uuid4().hex,
                                       name="t", state=Pending().to_schema(),
                                       empirical_policy={"retries": 1, "retry_delay": 0})  # fmt: skip
    claim = task_run_claim(task_run_id=run_id, worker="w-old", hostname="h", pid=1,
                           dispatch={"body": {"task_run_id": str(run_id)}, "queue": "q"}, timeout=3)  # fmt: skip
    assert claim.status == "claimed"
    assert task_run_set_state(task_run_id=run_id, state=State(type=StateType.RUNNING)).status == SetStateStatus.ACCEPT
    return run_id


def test_a_second_delivery_is_dropped_while_the_first_worker_is_alive(claimed_run):
    claim = task_run_claim(task_run_id=claimed_run, worker="w-new", hostname="h", pid=2, dispatch=None, timeout=3)
    assert (claim.status, claim.reason) == ("held", "worker w-old is running it")
    assert task_run_heartbeat(task_run_ids=[claimed_run], worker="w-old") == 1
    assert task_run_heartbeat(task_run_ids=[claimed_run], worker="w-new") == 0


def test_the_sweep_crashes_a_quiet_run_retries_it_once_and_a_stale_completion_is_rejected(claimed_run):
    TaskRun.objects.filter(pk=claimed_run).update(heartbeat=timezone.now() - timezone.timedelta(seconds=10))
    resend = task_runs_sweep_lost(timeout=3, task_run_ids=[claimed_run])
    assert resend == [{"body": {"task_run_id": str(claimed_run)}, "queue": "q"}]
    assert task_runs_sweep_lost(timeout=3, task_run_ids=[claimed_run]) == []  # swept once
    run = TaskRun.objects.get(pk=claimed_run)
    assert state_names(run)[-2:] == ["Crashed", "AwaitingRetry"]
    stale = task_run_set_state(task_run_id=claimed_run, state=State(type=StateType.COMPLETED))
    assert stale.status == SetStateStatus.REJECT and stale.state.name == "AwaitingRetry"


def test_a_redelivered_message_of_a_finished_run_is_dropped(claimed_run):
    task_run_set_state(task_run_id=claimed_run, state=State(type=StateType.COMPLETED))
    claim = task_run_claim(task_run_id=claimed_run, worker="w-new", hostname="h", pid=2, dispatch=None, timeout=3)
    assert claim.status == "finished"


def test_a_run_whose_pool_process_is_killed_is_crashed_and_retried_by_the_same_worker(start_worker, tmp_path):
    import os
    import signal

    ledger = tmp_path / "ledger"
    worker = start_worker(concurrency=1)
    outcome = run_in_thread(flows.survives_a_lost_worker, str(ledger))
    wait_for_lines(ledger, 1)
    child_pid = int(ledger.read_text().split()[0])
    assert child_pid != worker.process.pid
    os.kill(child_pid, signal.SIGKILL)  # the worker's main process lives on and gets the message back
    outcome["thread"].join(timeout=90)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"].result() == "done"
    task_run = FlowRun.objects.filter(flow__name="survives-a-lost-worker").latest("created").task_runs.get()
    assert state_names(task_run) == ["Pending", "Running", "Crashed", "AwaitingRetry", "Retrying", "Completed"]
    assert len(ledger.read_text().splitlines()) == 2


@pytest.mark.parametrize("transport", ["in-process", "http"])
def test_a_run_given_back_while_it_waits_is_claimed_by_the_next_worker_and_not_swept(client, transport, request):
    """A worker told to wait (a full concurrency limit) gives the run back before sending its message again."""
    from sdk.client.http import HttpClient
    from sdk.states import Pending

    if transport == "http":
        live_server, token = request.getfixturevalue("live_server"), request.getfixturevalue("make_token")()
        client = HttpClient(f"{live_server}/api", token)
    flow_id = client.create_flow("claims")
    flow_run_id, _ = client.create_flow_run(flow_id=flow_id, name="c", state=Pending().to_schema())
    run_id, _ = client.create_task_run(flow_run_id=flow_run_id, task_key="m.t", dynamic_key=uuid.uuid4().hex,
                                       name="t", state=Pending().to_schema())  # fmt: skip
    assert client.claim_task_run(run_id, worker="w-old", hostname="h", pid=1, dispatch=None)[0] == "claimed"
    assert client.claim_task_run(run_id, worker="w-new", hostname="h", pid=2, dispatch=None)[0] == "held"

    assert client.release_task_run(run_id, worker="w-other") is False  # only its holder gives it back
    assert client.release_task_run(run_id, worker="w-old") is True

    assert task_runs_sweep_lost(timeout=0, task_run_ids=[run_id]) == []
    assert TaskRun.objects.get(pk=run_id).state_name == "Pending"
    assert client.claim_task_run(run_id, worker="w-new", hostname="h", pid=2, dispatch=None)[0] == "claimed"


def test_a_stopped_worker_that_wakes_after_its_run_was_retried_cannot_overwrite_the_retry(start_worker, tmp_path):
    """SIGSTOP mid-task: the run is Crashed and retried elsewhere; after SIGCONT the old attempt's
    Completed is refused (it follows a state the run has left) and the retry's outcome stands."""
    ledger = tmp_path / "ledger"
    sleeper = start_worker(concurrency=1)
    outcome = run_in_thread(flows.outlives_a_stopped_worker, str(ledger))
    wait_for_lines(ledger, 1)
    os.killpg(sleeper.process.pid, signal.SIGSTOP)
    try:
        start_worker(concurrency=1)
        outcome["thread"].join(timeout=90)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["value"].result() == 2  # the retry's value
    finally:
        os.killpg(sleeper.process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while "outcome was not recorded" not in sleeper.output() and time.monotonic() < deadline:
        time.sleep(0.2)

    task_run = FlowRun.objects.filter(flow__name="outlives-a-stopped-worker").latest("created").task_runs.get()
    assert state_names(task_run) == ["Pending", "Running", "Crashed", "AwaitingRetry", "Retrying", "Completed"]
    assert task_run.state.result == {"type": "json", "value": 2}
    assert "This attempt's outcome was not recorded: this proposal follows state" in sleeper.output()
    assert len(ledger.read_text().splitlines()) == 2


def pending_task_run(client, retries: int = 0) -> uuid.UUID:
    """A Pending task run of a Running flow run, as a flow leaves it for a worker."""
    from sdk.states import Pending

    flow_run_id, _ = client.create_flow_run(flow_id=client.create_flow("claims"), name="c", state=Pending().to_schema())
    client.set_flow_run_state(flow_run_id, State(type=StateType.RUNNING))
    run_id, _ = client.create_task_run(flow_run_id=flow_run_id, task_key="m.t", dynamic_key=uuid.uuid4().hex,
                                       name="t", state=Pending().to_schema(),
                                       empirical_policy={"retries": retries, "retry_delay": 0})  # fmt: skip
    return run_id


@pytest.mark.parametrize("transport", ["in-process", "http"])
def test_a_worker_claims_and_starts_a_run_in_one_call_and_a_second_delivery_changes_nothing(client, transport, request):
    from sdk.client.http import HttpClient

    if transport == "http":
        live_server, token = request.getfixturevalue("live_server"), request.getfixturevalue("make_token")()
        client = HttpClient(f"{live_server}/api", token)
    run_id = pending_task_run(client)
    running = State(type=StateType.RUNNING, details=StateDetails(transition_key="first-start"))
    status, _, answer = client.claim_and_start_task_run(run_id, running, worker="w-old", hostname="h", pid=1,
                                                        dispatch={"body": {}, "queue": "q"})  # fmt: skip
    assert (status, answer.status, answer.state.type, answer.run_count) == ("claimed", SetStateStatus.ACCEPT, StateType.RUNNING, 1)
    assert TaskRun.objects.filter(pk=run_id, worker="w-old", dispatch={"body": {}, "queue": "q"}).exists()

    # the same request again (its answer was lost): answered as before, not a second claim that crashes the run
    status, _, again = client.claim_and_start_task_run(run_id, running, worker="w-old", hostname="h", pid=1, dispatch=None)
    assert (status, again.state.id) == ("claimed", answer.state.id)
    # another worker's delivery of the same message: refused, nothing proposed
    status, reason, refused = client.claim_and_start_task_run(run_id, State(type=StateType.RUNNING), worker="w-new",
                                                              hostname="h", pid=2, dispatch=None)  # fmt: skip
    assert (status, reason, refused) == ("held", "worker w-old is running it", None)
    assert state_names(TaskRun.objects.get(pk=run_id)) == ["Pending", "Running"]
    assert TaskRun.objects.get(pk=run_id).worker == "w-old"

    client.set_task_run_state(run_id, State(type=StateType.COMPLETED))
    status, reason, refused = client.claim_and_start_task_run(run_id, State(type=StateType.RUNNING), worker="w-new",
                                                              hostname="h", pid=2, dispatch=None)  # fmt: skip
    assert (status, reason, refused) == ("finished", "the run is Completed", None)
    assert state_names(TaskRun.objects.get(pk=run_id)) == ["Pending", "Running", "Completed"]


def test_a_claim_and_its_start_are_one_transaction_without_a_savepoint_of_their_own(client):
    """The Running proposal inside the claim's transaction needs no savepoint: if it failed, the whole
    transaction would (two statements fewer per task run on a worker)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orchestrator.runs.claims import task_run_claim_and_start

    run_id = pending_task_run(client)
    with CaptureQueriesContext(connection) as queries:
        claim, answer = task_run_claim_and_start(task_run_id=run_id, state=State(type=StateType.RUNNING), worker="w",
                                                 hostname="h", pid=1, dispatch=None, timeout=30)  # fmt: skip
    assert (claim.status, answer.status, answer.state.type) == ("claimed", SetStateStatus.ACCEPT, StateType.RUNNING)
    assert not [q["sql"] for q in queries.captured_queries if "SAVEPOINT" in q["sql"].upper()]
    assert state_names(TaskRun.objects.get(pk=run_id)) == ["Pending", "Running"]


def test_a_claim_with_a_malformed_state_to_start_is_refused_naming_it(client, api):
    run_id = pending_task_run(client)
    answer = api.post(f"task_runs/{run_id}/claim/",
                      json={"worker": "w", "hostname": "h", "pid": 1, "dispatch": None, "then": {"type": "RUNNIG"}})
    assert answer.status_code == 400
    assert answer.json()["detail"] == 'then.type: "RUNNIG" is not a valid choice.'
    assert TaskRun.objects.get(pk=run_id).worker == ""  # not claimed


def test_a_run_whose_code_a_worker_cannot_load_ends_crashed_saying_why(client, start_worker, tmp_path):
    """Not left Pending for ever, nor crashed by the sweep and sent to the same worker again and again."""
    from workers.tasks import send

    run_id = pending_task_run(client)
    flow_run_id = TaskRun.objects.get(pk=run_id).flow_run_id
    worker = start_worker(concurrency=1)
    send({"task_run_id": str(run_id), "task": f"{tmp_path / 'not_on_this_host.py'}:t", "task_key": "m.t", "name": "t",
          "dynamic_key": "0", "tags": [], "parameters": {}, "flow_run": {"id": str(flow_run_id), "name": "c"},
          "log_prints": False, "storage": str(tmp_path), "rate_limit": None}, os.environ["RUNWAY_DEFAULT_QUEUE"])  # fmt: skip
    deadline = time.monotonic() + 60
    while TaskRun.objects.get(pk=run_id).state_type != "CRASHED" and time.monotonic() < deadline:
        time.sleep(0.2)
    run = TaskRun.objects.get(pk=run_id)
    assert state_names(run) == ["Pending", "Crashed"]
    assert run.state.message.startswith(f"Crashed: worker {worker.name}@") and " could not load the task run: " in run.state.message
    assert f"EntrypointError: no file '{tmp_path / 'not_on_this_host.py'}'" in run.state.message
    assert "not_on_this_host.py" in worker.output()  # and the worker's log has the traceback
    time.sleep(8)  # longer than the heartbeat timeout: the sweep does not take it for a lost worker's run
    assert state_names(TaskRun.objects.get(pk=run_id)) == ["Pending", "Crashed"]
