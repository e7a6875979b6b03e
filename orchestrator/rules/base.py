"""The rule contract and the context a rule reads and answers through."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from orchestrator.schemas import OrchestrationResult, SetStateStatus, State, StateType

ALL_STATES: frozenset[StateType | None] = frozenset([*StateType, None])
"""Every state type, plus None for a run that has no state yet."""


@dataclass
class OrchestrationContext:
    """One proposed transition of one run, and the answer being built for it.

    `run` is the locked ORM row (FlowRun or TaskRun); `initial` its current
    state (None for a new run); `proposed` what will be written if `write` holds.
    """

    run: Any
    kind: str  # "flow" or "task"
    initial: State | None
    proposed: State
    now: datetime
    status: SetStateStatus = SetStateStatus.ACCEPT
    reason: str | None = None
    delay_seconds: float | None = None
    write: bool = True
    settled: bool = False  # a rule has answered; later rules do not run
    after_commit: list[Any] = field(default_factory=list)

    @property
    def initial_type(self) -> StateType | None:
        return self.initial.type if self.initial else None

    def reject(self, state: State | None, reason: str) -> None:
        """Refuse the proposal; the run moves to `state` instead, or stays where it is if None.

        `state` takes the proposal's transition key, so that a repeat of the
        proposal is answered with it again (PreventDuplicateTransitions).
        """
        self.status, self.reason, self.settled = SetStateStatus.REJECT, reason, True
        if state is None:
            self.write = False
        else:
            state.details.transition_key = state.details.transition_key or self.proposed.details.transition_key
            self.proposed = state

    def replay(self, reason: str) -> None:
        """Answer a repeated proposal as the first time, with the state it produced, writing nothing.

        The first answer was ACCEPT if that state has the proposed type (a rule may
        have renamed it: Retrying), REJECT if a rule put another state in its place.
        """
        same = self.initial is not None and self.initial.type == self.proposed.type
        self.status = SetStateStatus.ACCEPT if same else SetStateStatus.REJECT
        self.reason, self.write, self.settled = reason, False, True

    def delay(self, seconds: float, reason: str) -> None:
        """Ask the client to propose again after `seconds`."""
        self.status, self.reason, self.delay_seconds = SetStateStatus.WAIT, reason, seconds
        self.write, self.settled = False, True

    def abort(self, reason: str) -> None:
        """Tell the client to stop orchestrating this run."""
        self.status, self.reason, self.write, self.settled = SetStateStatus.ABORT, reason, False, True

    def result(self, written: State | None) -> OrchestrationResult:
        state = written if self.write else self.initial
        return OrchestrationResult(self.status, state, self.reason, self.delay_seconds,
                                   getattr(self.run, "run_count", None))  # fmt: skip


class Rule:
    """A small orchestration rule that fires for transitions FROM_STATES -> TO_STATES.

    Subclasses override `before_transition` to answer (reject, delay, abort or
    rewrite the proposal) and `after_transition` to act once the state is
    written. A rule whose premise no longer holds after a later rule changed the
    proposal gets `cleanup` instead, to undo what `before_transition` took.
    """

    FROM_STATES: ClassVar[frozenset[StateType | None]] = ALL_STATES
    TO_STATES: ClassVar[frozenset[StateType | None]] = ALL_STATES

    @classmethod
    def matches(cls, initial: StateType | None, proposed: StateType) -> bool:
        return initial in cls.FROM_STATES and proposed in cls.TO_STATES

    def before_transition(self, ctx: OrchestrationContext) -> None:
        """Inspect the proposal and answer through ctx; doing nothing accepts it."""

    def after_transition(self, ctx: OrchestrationContext) -> None:
        """Act after the state was written (still inside the transaction)."""

    def cleanup(self, ctx: OrchestrationContext) -> None:
        """Undo `before_transition` when the transition it saw did not happen."""

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]
