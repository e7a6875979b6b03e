"""Check 11: the rules engine's invariants under random sequences of proposals, on the real database.

A Hypothesis state machine creates flow runs and task runs and drives them through
the real services (`flow_run_create`, `task_run_create`, `flow_run_set_state`,
`task_run_set_state`) with:

- valid proposals (the next step of a run's life: Pending, Running, Completed or Failed...);
- any proposal at all, in any order (out-of-order: Completed from Scheduled, Late from Running...);
- duplicates: the last proposal sent again with the same transition key, also after the run moved on;
- stale proposals: `details.from_state_id` naming a state the run has left (AbortSupersededProposals);
- forced proposals, of the kinds Runway's own forced writers make (FORCED_PATHS);
- concurrent proposals: two threads, each on its own database connection, proposing at once.

After every step, for every run (checked against what the test observed, not against
the rules' own answers):

1. exactly one current state: the run row points at the newest row of its history,
   and its copies of the state's type, name and time are that row's;
2. state timestamps strictly increase along the history, in the order the states appeared;
3. each consecutive pair of states is allowed: for a proposal without force, the pairs
   the hand-written matrix of tests/orchestrator/rules/test_transitions.py answers "ok"
   (imported from there, not from orchestrator.rules.core), plus the substitutions
   docs/rules.md names; for forced and cascaded writes, the paths listed below;
4. terminal states are sticky except the documented retry and rerun paths (TERMINAL_EXITS);
5. run_count only grows, by one per entry into Running, except when it restarts from 0
   on leaving a terminal state for Pending or Running (docs/rules.md, Bookkeeping);
6. no transition key is written twice in a run's history (a repeat is never re-applied).

Check 11 is this file plus the exhaustive from/to matrix of
tests/orchestrator/rules/test_transitions.py (every pair, flow and task, forced and not),
which `test_the_exhaustive_transition_matrix_passes` runs as it stands (it is not copied).

Examples are bounded (RUNWAY_STATEFUL_EXAMPLES, default 40, of up to 40 steps) to stay
well under 2 minutes per database on a small machine; the test prints how many steps ran.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections, connection
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orchestrator.exceptions import InvalidInput
from orchestrator.runs import services
from orchestrator.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState
from orchestrator.schemas import (
    TERMINAL_TYPES,
    OrchestrationResult,
    SetStateStatus,
    State,
    StateDetails,
    StateType,
)
from tests.conftest import REPO_ROOT
from tests.orchestrator.rules.test_transitions import (
    COLUMNS,
    FLOW_ANSWERS,
    TASK_ANSWERS,
)
from tests.reliability.at_once import at_once

S = StateType
ACCEPT, REJECT, WAIT, ABORT = SetStateStatus.ACCEPT, SetStateStatus.REJECT, SetStateStatus.WAIT, SetStateStatus.ABORT
EXAMPLES = int(os.environ.get("RUNWAY_STATEFUL_EXAMPLES", "40"))
STEPS_PER_EXAMPLE = 40


# --- what may be written: derived from the hand-written matrix and docs/rules.md ------------------
def _written_by_proposals(answers: dict) -> dict[StateType | None, frozenset[StateType]]:
    """The (from -> to) pairs a proposal without force writes: "ok", "Rerunning" (the proposal,
    renamed) and "->Cancelled" (Cancelled written in place of Cancelling)."""
    allowed = {}
    for start, row in answers.items():
        ends = {end for end, answer in zip(COLUMNS, row) if answer in ("ok", "Rerunning")}
        allowed[start] = frozenset(ends | ({S.CANCELLED} if "->Cancelled" in row else set()))
    return allowed


WRITTEN = {"flow": _written_by_proposals(FLOW_ANSWERS), "task": _written_by_proposals(TASK_ANSWERS)}
# PreventRunningTasksFromStoppedFlows (docs/rules.md, task rule 5): a task run proposed Running while
# its flow run is Paused is rejected to Paused "NotReady", written in its place; so from wherever
# Running may be proposed, Paused NotReady may be written.
NOT_READY_FROM = frozenset(start for start, row in TASK_ANSWERS.items() if row[COLUMNS.index(S.RUNNING)] != "no")


@dataclass(frozen=True)
class ForcedPath:
    """A kind of forced write Runway makes, where, and from which state types."""

    name: str
    kinds: frozenset[str]
    sources: frozenset[StateType]
    to: StateType
    to_name: str | None  # None: the type's default name
    where: str
    result: dict[str, Any] | None = None


_BOTH, _FLOW, _TASK = frozenset({"flow", "task"}), frozenset({"flow"}), frozenset({"task"})
_RERUNNABLE = frozenset({S.FAILED, S.CRASHED, S.CANCELLED})
FORCED_PATHS = [
    ForcedPath("crash a run whose process or worker is gone", _BOTH, frozenset({S.PENDING, S.RUNNING, S.CANCELLING}),
               S.CRASHED, None, "sdk/engine/orphans.py; runs/claims.py; deployments/agents.py _lose, flow_run_process_exited"),
    ForcedPath("retry an attempt whose worker or agent was lost", _BOTH, frozenset({S.CRASHED}), S.SCHEDULED,
               "AwaitingRetry", "runs/claims.py _crash_and_maybe_retry; deployments/agents.py _lose"),
    ForcedPath("cancel a started flow run on request", _FLOW, frozenset({S.RUNNING, S.CANCELLING}), S.CANCELLING,
               None, "runs/services.py flow_run_cancel"),
    ForcedPath("cancel a flow run nothing runs", _FLOW, frozenset({S.SCHEDULED, S.PENDING, S.PAUSED, S.CANCELLING}),
               S.CANCELLED, None, "flow_run_cancel; agents _lose (Cancelling); deployment deleted; flow_run_claim"),
    ForcedPath("release a deployment run again after its agent was lost", _FLOW, frozenset({S.PENDING}), S.SCHEDULED,
               None, "deployments/agents.py _lose"),
    ForcedPath("retry a finished deployment run on request", _FLOW, TERMINAL_TYPES, S.SCHEDULED, "AwaitingRetry",
               "deployments/services.py deployment_run_retry"),
    ForcedPath("record a task run whose upstream failed", _TASK, frozenset({S.SCHEDULED, S.PENDING}) | _RERUNNABLE,
               S.PENDING, "NotReady", "sdk/engine/task_engine.py"),
    ForcedPath("record a task run the orchestrator aborted", _TASK,
               frozenset({S.SCHEDULED, S.PENDING, S.PAUSED}) | _RERUNNABLE, S.CANCELLED, None,
               "sdk/engine/task_engine.py (Cancelled 'Not run: ...')"),
    ForcedPath("record the result a committed transaction kept", _TASK, frozenset({S.PENDING}), S.COMPLETED, None,
               "sdk/engine/task_engine.py (recorded)"),
    ForcedPath("roll a completed task run back", _TASK, frozenset({S.COMPLETED}), S.COMPLETED, "RolledBack",
               "sdk/transactions.py record_rollback", result={"type": "unpersisted"}),
]
# The only ways out of a terminal state (docs/rules.md: legal transitions, RejectIllegalTransitions,
# Bookkeeping; docs/deployments.md: retrying a run). Anything else leaving one is a violation.
TERMINAL_EXITS = frozenset({
    "a task run rerun by its flow run's retry",  # Failed, Crashed, Cancelled -> Pending, Running (legal table)
    "a task run whose result was not persisted, rerun",  # Completed (unpersisted) -> Pending, Running
    "retry an attempt whose worker or agent was lost",  # Crashed -> AwaitingRetry (forced)
    "retry a finished deployment run on request",  # any terminal -> AwaitingRetry (forced)
    "record a task run whose upstream failed",  # a rerun task run -> Pending NotReady (forced)
    "record a task run the orchestrator aborted",  # a rerun task run -> Cancelled "Not run" (forced)
    "roll a completed task run back",  # Completed -> Completed RolledBack (forced)
})


@dataclass(frozen=True)
class Row:
    id: uuid.UUID
    type: StateType
    name: str
    timestamp: datetime
    key: str | None
    unpersisted: bool


@dataclass
class Run:
    kind: str
    id: uuid.UUID
    flow_run_id: uuid.UUID | None = None
    pid: int | None = None
    last: tuple[State, bool, OrchestrationResult, uuid.UUID | None] | None = None  # state, force, answer, row written
    rows: list[Row] = field(default_factory=list)  # as observed, in order
    run_count: int = 0

    def __repr__(self) -> str:
        return f"{self.kind}-run {str(self.id)[:8]}"


def allowed(run: Run, prev: Row | None, row: Row, origin: tuple) -> str | None:
    """Why the pair prev -> row may be written, given who wrote it (origin: ("create",),
    ("proposal", forced) or ("cascade",) for a task run moved by its flow run's step); None if it may not."""
    start = prev.type if prev else None
    if origin[0] in ("create", "proposal"):
        if row.type in WRITTEN[run.kind][start]:
            if start in _RERUNNABLE and run.kind == "task":
                return "a task run rerun by its flow run's retry"
            return "legal"
        if run.kind == "task" and row.type == S.PAUSED and row.name == "NotReady" and start in NOT_READY_FROM:
            return "legal"
        # The matrix's runs have no process: BypassCancellingRunsWithNoProcess cancels a Paused one at
        # once. A Paused flow run whose process is there goes Cancelling, for the process to stop it.
        if run.kind == "flow" and start == S.PAUSED and row.type == S.CANCELLING and run.pid:
            return "legal"
        if run.kind == "task" and start == S.COMPLETED and prev.unpersisted and row.type in (S.PENDING, S.RUNNING):
            return "a task run whose result was not persisted, rerun"
    if origin == ("proposal", True):
        for path in FORCED_PATHS:
            if run.kind in path.kinds and start in path.sources and row.type == path.to and row.name == (path.to_name or State(path.to).name):
                return path.name
    # FinishUnfinishedTaskRuns (flow run Crashed or Cancelled) and CrashTaskRunsLeftRunning (flow run
    # Completed or Failed), forced on the task runs of the flow run a step moved.
    if origin == ("cascade",) and run.kind == "task" and start not in TERMINAL_TYPES and row.type in (S.CRASHED, S.CANCELLED):
        return "legal"
    return None


# --- proposals -------------------------------------------------------------------------------------
PROPOSALS = {
    "Scheduled": lambda: State(S.SCHEDULED),
    "Scheduled in an hour": lambda: State(S.SCHEDULED, details=StateDetails(scheduled_time=timezone.now() + timedelta(hours=1))),
    "Late": lambda: State(S.SCHEDULED, name="Late"),
    "AwaitingRetry": lambda: State(S.SCHEDULED, name="AwaitingRetry"),
    "Pending": lambda: State(S.PENDING),
    "Running": lambda: State(S.RUNNING),
    "Completed": lambda: State(S.COMPLETED, result={"type": "json", "value": 1}),
    "Completed (result not persisted)": lambda: State(S.COMPLETED, result={"type": "unpersisted"}),
    "Failed": lambda: State(S.FAILED),
    "Failed (not retriable)": lambda: State(S.FAILED, details=StateDetails(retriable=False)),
    "Crashed": lambda: State(S.CRASHED),
    "Cancelling": lambda: State(S.CANCELLING),
    "Cancelled": lambda: State(S.CANCELLED),
    "Paused": lambda: State(S.PAUSED),
}
proposals = st.sampled_from(sorted(PROPOSALS))


def _keyed(state: State) -> State:
    state.details.transition_key = uuid.uuid4().hex
    return state


def _set_state(run: Run, state: State, force: bool = False) -> OrchestrationResult:
    if run.kind == "flow":
        return services.flow_run_set_state(flow_run_id=run.id, state=state, force=force)
    return services.task_run_set_state(task_run_id=run.id, state=state, force=force)


STATS: Counter = Counter()


# Which run, which next step, which forced path...: drawn as plain numbers, taken modulo what the
# database offers now. Hypothesis requires a test case's draws not to depend on outside state, and
# the outcome of concurrent proposals (so the states the runs are in) differs from one replay to the next.
which = st.integers(0, 11)
has_runs = precondition(lambda self: bool(self.tracked))


class RulesMachine(RuleBasedStateMachine):
    """Runs of one flow, driven by random proposals; see the module docstring."""

    flow_id: uuid.UUID  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.tracked: list[Run] = []  # flow runs and task runs
        self.flow_runs: list[Run] = []
        self.task_runs_tried = 0
        self.step: dict[uuid.UUID, tuple] = {}  # the origin of the rows this step writes, by run

    def _run(self, index: int) -> Run:
        return self.tracked[index % len(self.tracked)]

    # --- creating runs (a few per example, so that the steps go into their histories) ------------
    @precondition(lambda self: len(self.flow_runs) < 2)
    @rule(first=st.sampled_from([S.SCHEDULED, S.PENDING, S.RUNNING]),
          retries=st.integers(0, 2), pid=st.sampled_from([None, 4242]))  # fmt: skip
    def create_flow_run(self, first: StateType, retries: int, pid: int | None) -> None:
        flow_run, answer = services.flow_run_create(
            flow_id=self.flow_id, name=f"stateful-{uuid.uuid4().hex[:6]}", state=State(first),
            empirical_policy={"retries": retries, "retry_delay": 0}, pid=pid,
        )  # fmt: skip
        run = Run("flow", flow_run.id, pid=pid)
        self.flow_runs.append(run)
        self._created(run, answer, "create_flow_run")

    @precondition(lambda self: self.flow_runs and self.task_runs_tried < 3)
    @rule(parent=which, first=st.sampled_from([S.SCHEDULED, S.PENDING, S.RUNNING]), retries=st.integers(0, 2))
    def create_task_run(self, parent: int, first: StateType, retries: int) -> None:
        flow_run = self.flow_runs[parent % len(self.flow_runs)]
        self.task_runs_tried += 1
        try:
            task_run, answer = services.task_run_create(
                flow_run_id=flow_run.id, task_key="stateful.task", dynamic_key=uuid.uuid4().hex,
                name="task", state=State(first), empirical_policy={"retries": retries, "retry_delay": 0},
            )  # fmt: skip
        except InvalidInput as refused:  # e.g. Running in a flow run that is not Running: nothing made
            assert "cannot start" in str(refused)
            STATS["create_task_run (refused)"] += 1
            return
        self._created(Run("task", task_run.id, flow_run_id=flow_run.id), answer, "create_task_run")

    def _created(self, run: Run, answer: OrchestrationResult, label: str) -> None:
        assert answer.status in (ACCEPT, REJECT) and answer.state is not None  # REJECT: Paused NotReady in its place
        self.tracked.append(run)
        self.step = {run.id: ("create",)}
        STATS[label] += 1

    # --- proposals ---------------------------------------------------------------------------
    @has_runs
    @rule(pick=which, choice=which)
    def advance(self, pick: int, choice: int) -> None:
        """The next step of a run's ordinary life, as the SDK engine or an agent would propose it."""
        run = self._run(pick)
        current = self._current(run)
        nexts = {S.SCHEDULED: ["Pending", "Running"], S.PENDING: ["Running"], S.RUNNING: ["Completed", "Failed", "Paused"],
                 S.PAUSED: ["Running"], S.CANCELLING: ["Cancelled"], S.FAILED: ["Running", "Pending"],
                 S.CRASHED: ["Running"], S.CANCELLED: ["Pending"], S.COMPLETED: ["Running"]}[current.type]  # fmt: skip
        self._propose(run, PROPOSALS[nexts[choice % len(nexts)]](), "advance")

    @has_runs
    @rule(pick=which, name=proposals, keyed=st.booleans(), conditional=st.booleans())
    def propose(self, pick: int, name: str, keyed: bool, conditional: bool) -> None:
        """Any proposal, legal or not; `conditional` makes it follow the current state (from_state_id)."""
        run = self._run(pick)
        state = PROPOSALS[name]()
        if conditional:
            state.details.from_state_id = str(self._current(run).id)
        self._propose(run, state, "propose", keyed=keyed)

    def _propose(self, run: Run, state: State, label: str, keyed: bool = True, force: bool = False) -> OrchestrationResult:
        if keyed:
            _keyed(state)
        before = self._row_ids(run)
        self.step = {run.id: ("proposal", force)}
        answer = _set_state(run, state, force)
        written = self._row_ids(run) - before
        self._check_answer(run, state, answer, written, force)
        run.last = (state, force, answer, next(iter(written), None))
        STATS[f"{label} ({answer.status.value})"] += 1
        return answer

    def _check_answer(self, run: Run, state: State, answer: OrchestrationResult, written: set, force: bool) -> None:
        """The answer names the run's current state, and says whether the proposal was written."""
        current = self._current(run)
        assert answer.state is not None and answer.state.id == current.id, (answer, current)
        assert len(written) <= 1, written
        if answer.status == ACCEPT:
            assert written == {current.id} and current.type == state.type, (answer, written)
            renamed = {"Retrying", "Rerunning"} if state.type == S.RUNNING else set()
            assert current.name in {state.name} | renamed, (state.name, current.name)
        elif answer.status == REJECT:
            assert answer.reason, answer
            substituted = written == {current.id} and (current.type, current.name) != (state.type, state.name)
            assert not written or substituted, answer
        else:  # WAIT and ABORT write nothing
            assert not written and answer.reason, answer
        if force:  # a forced proposal is written, unless stale (ABORT) or a repeat
            assert answer.status == ACCEPT and written, answer

    @has_runs
    @rule(pick=which)
    def repeat_last_proposal(self, pick: int) -> None:
        """The last proposal sent again with its transition key (a client retrying a request whose
        answer it lost), at once or after the run moved on (a late duplicate)."""
        run = self._run(pick)
        if run.last is None or not run.last[0].details.transition_key:
            return
        state, force, first, written = run.last
        before = self._row_ids(run)
        self.step = {run.id: ("proposal", force)}
        answer = _set_state(run, state, force)
        again = self._row_ids(run) - before
        assert not (again and written), f"{run}: a proposal that was written was written again: {answer}"
        if again:  # not written the first time (refused, WAIT), written now: the run had moved meanwhile
            run.last = (state, force, answer, next(iter(again)))
        if written is not None and self._current(run).id == written:
            assert (answer.status, answer.state.id) == (first.status, first.state.id), (first, answer)
            STATS["repeat_last_proposal (replayed)"] += 1
        else:
            assert answer.state.id == self._current(run).id
            STATS[f"repeat_last_proposal (late or unwritten: {answer.status.value})"] += 1

    @has_runs
    @rule(pick=which, name=proposals, force=st.booleans(), choice=which)
    def propose_from_a_state_left(self, pick: int, name: str, force: bool, choice: int) -> None:
        """A proposal following a state the run has since left: its proposer lost the run."""
        run = self._run(pick)
        left = [row for row in run.rows if row.id != self._current(run).id]
        if not left:
            return
        state = _keyed(PROPOSALS[name]())
        state.details.from_state_id = str(left[choice % len(left)].id)
        before = self._row_ids(run)
        self.step = {run.id: ("proposal", force)}
        answer = _set_state(run, state, force)
        assert answer.status == ABORT and self._row_ids(run) == before, answer
        STATS["propose_from_a_state_left (ABORT)"] += 1

    @has_runs
    @rule(pick=which, choice=which)
    def force(self, pick: int, choice: int) -> None:
        """A forced write of a kind Runway's own forced writers make from the run's current state."""
        run = self._run(pick)
        current = self._current(run)
        paths = [p for p in FORCED_PATHS if run.kind in p.kinds and current.type in p.sources]
        if not paths:
            return
        path = paths[choice % len(paths)]
        state = State(path.to, name=path.to_name, message=f"forced: {path.name}", result=path.result)
        answer = self._propose(run, state, "force", force=True)
        assert answer.status == ACCEPT

    @has_runs
    @rule(pick=which, first=proposals, second=proposals, same=st.booleans())
    def propose_concurrently(self, pick: int, first: str, second: str, same: bool) -> None:
        """Two threads, each on its own database connection, propose at the same moment: the same
        proposal (one transition key), or two different ones."""
        run = self._run(pick)
        one = _keyed(PROPOSALS[first]())
        two = one if same else _keyed(PROPOSALS[second]())
        before = self._row_ids(run)
        self.step = {run.id: ("proposal", False)}
        answers = at_once([lambda: _set_state(run, one), lambda: _set_state(run, two)])
        assert not [a for a in answers if isinstance(a, BaseException)], answers
        written = self._row_ids(run) - before
        for answer in answers:
            assert answer.state.id in self._row_ids(run), answer
        accepted = [a for a in answers if a.status == ACCEPT]
        if same:
            assert len(written) <= 1, written
            assert (answers[0].status, answers[0].state.id) == (answers[1].status, answers[1].state.id), answers
        else:
            assert len(written) <= 2 and len(accepted) <= len(written), (answers, written)
        STATS[f"propose_concurrently ({'same key' if same else 'two keys'}: {len(written)} written)"] += 1

    # --- invariants --------------------------------------------------------------------------
    @invariant()
    def histories_hold(self) -> None:
        if not self.tracked:
            return
        histories, heads = _load(self.tracked)
        for run in self.tracked:
            self._check_run(run, histories.get(run.id, []), heads[run.id])
        self.step = {}

    def _check_run(self, run: Run, rows: list[Row], head: dict[str, Any]) -> None:
        known = {row.id for row in run.rows}
        assert known <= {row.id for row in rows}, f"{run}: states disappeared"
        new = [row for row in rows if row.id not in known]
        origin = self.step.get(run.id) or (("cascade",) if run.kind == "task" and run.flow_run_id in self.step else None)
        assert not new or origin, f"{run}: states {new} written by a step that did not touch it"
        for row in new:  # 2. strictly increasing, in the order they appeared
            prev = run.rows[-1] if run.rows else None
            assert prev is None or row.timestamp > prev.timestamp, f"{run}: {row} is not after {prev}"
            why = allowed(run, prev, row, origin)  # 3. an allowed transition
            assert why, f"{run}: {prev and prev.name} -> {row.name} written by {origin} is not an allowed transition"
            if prev is not None and prev.type in TERMINAL_TYPES:  # 4. terminal states are sticky
                assert why in TERMINAL_EXITS, f"{run}: left terminal {prev.name} for {row.name} ({why})"
            run.run_count = _next_run_count(run, prev, row)  # 5. run_count
            run.rows.append(row)
        assert rows == run.rows, f"{run}: history order differs from the order states appeared"
        newest = run.rows[-1]  # 1. exactly one current state: the newest, copied onto the run row
        assert (head["state_id"], head["state_type"], head["state_name"]) == (newest.id, newest.type.value, newest.name), (run, head, newest)
        assert _aware(head["state_timestamp"]) == newest.timestamp, (run, head, newest)
        assert head["run_count"] == run.run_count, f"{run}: run_count {head['run_count']}, expected {run.run_count}"
        keys = [row.key for row in run.rows if row.key]
        assert len(keys) == len(set(keys)), f"{run}: a transition key was written twice: {Counter(keys).most_common(1)}"

    def teardown(self) -> None:
        STATS["examples"] += 1

    # --- reading -----------------------------------------------------------------------------
    def _current(self, run: Run) -> Row:
        histories, _ = _load([run])
        return histories[run.id][-1]

    def _row_ids(self, run: Run) -> set[uuid.UUID]:
        model, column = (FlowRunState, "flow_run_id") if run.kind == "flow" else (TaskRunState, "task_run_id")
        return set(model.objects.filter(**{column: run.id}).values_list("id", flat=True))


def _next_run_count(run: Run, prev: Row | None, row: Row) -> int:
    """docs/rules.md, Bookkeeping, increment_run_count: +1 on entering Running (not for a flow run
    resuming from Paused); back to 0 first when leaving a terminal state for Pending or Running."""
    count = run.run_count
    if prev is not None and prev.type in TERMINAL_TYPES and row.type in (S.PENDING, S.RUNNING):
        count = 0
    resuming = run.kind == "flow" and prev is not None and prev.type == S.PAUSED
    if row.type == S.RUNNING and not resuming:
        count += 1
    assert count >= run.run_count or (prev and prev.type in TERMINAL_TYPES), "run_count went down"
    return count


def _aware(value: Any) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _load(runs: list[Run]) -> tuple[dict[uuid.UUID, list[Row]], dict[uuid.UUID, dict[str, Any]]]:
    """Every state row of these runs, oldest first, and the run rows' copies of their current state."""
    histories: dict[uuid.UUID, list[Row]] = {}
    heads: dict[uuid.UUID, dict[str, Any]] = {}
    columns = ("id", "type", "name", "timestamp", "details", "result")
    for kind, model, state_model, column in (("flow", FlowRun, FlowRunState, "flow_run_id"), ("task", TaskRun, TaskRunState, "task_run_id")):
        ids = [run.id for run in runs if run.kind == kind]
        if not ids:
            continue
        for values in state_model.objects.filter(**{f"{column}__in": ids}).order_by("timestamp").values(column, *columns):
            row = Row(values["id"], StateType(values["type"]), values["name"], _aware(values["timestamp"]),
                      (values["details"] or {}).get("transition_key"), (values["result"] or {}).get("type") == "unpersisted")  # fmt: skip
            histories.setdefault(values[column], []).append(row)
        fields = ("id", "state_id", "state_type", "state_name", "state_timestamp", "run_count")
        heads.update({values["id"]: values for values in model.objects.filter(id__in=ids).values(*fields)})
    return histories, heads


def test_rules_hold_under_random_proposals(capsys) -> None:
    RulesMachine.flow_id = services.flow_get_or_create(name=f"stateful-{uuid.uuid4().hex[:8]}").id
    STATS.clear()
    started = timezone.now()
    run_state_machine_as_test(RulesMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS_PER_EXAMPLE, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    ))  # fmt: skip
    close_old_connections()
    steps = sum(count for label, count in STATS.items() if label != "examples")
    seconds = (timezone.now() - started).total_seconds()
    with capsys.disabled():
        print(f"\ncheck 11 ({connection.vendor}): {STATS['examples']} examples, {steps} steps, 0 violations, {seconds:.1f} s")
        for label, count in sorted(STATS.items()):
            print(f"  {label}: {count}")
    assert steps >= EXAMPLES  # every example took steps


def test_the_exhaustive_transition_matrix_passes() -> None:
    """The other half of check 11: every (from, to) pair of tests/orchestrator/rules/test_transitions.py,
    run as it stands, on this session's kind of database."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/orchestrator/rules/test_transitions.py", "-q", "-p", "no:cacheprovider"],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
