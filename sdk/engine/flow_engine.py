"""Orchestrating one flow run: create, validate parameters, start, call, wait for tasks, finish, retry."""
from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sdk.client.base import OrchestrationClient
from sdk.context import FlowRunContext, RunInfo, current_tags, enter
from sdk.engine import cancellation, inputs
from sdk.engine.cancellation import CancelScope
from sdk.engine.driver import Outcome, Steps, user_call
from sdk.engine.final_state import exception_state, flow_return_state
from sdk.engine.hooks import run_hooks
from sdk.engine.hosts import process_fields
from sdk.engine.inputs import jsonable
from sdk.engine.parameters import validate
from sdk.engine.propose import propose, propose_now
from sdk.exceptions import (
    Abort, FlowRunCancelledError, FlowRunTimeoutError, ParameterTypeError, Pause, TerminationSignal, UpstreamTaskError,
)  # fmt: skip
from sdk.logging import flow_run_logger, get_logger
from sdk.redaction import redact, redact_data
from sdk.settings import get_settings
from sdk.states import Cancelled, Crashed, Failed, Pending, Running, State

if TYPE_CHECKING:
    from sdk.flows import Flow


class FlowRunEngine:
    """The engine of one flow run; `create()` in the caller, then `steps()` under a driver."""

    def __init__(self, flow: Flow, parameters: dict[str, Any], *, client: OrchestrationClient,
                 parent: FlowRunContext | None, wait_for: list[Any] | None = None) -> None:  # fmt: skip
        self.flow, self.parameters, self.client, self.parent = flow, parameters, client, parent
        self.wait_for = wait_for
        self.rename = False  # named by a flow_run_name in the run's context: renamed as it starts
        self.state: State | None = None
        self._crash_recorded = False
        self.cancel_scope = CancelScope(parent.cancel_scope if parent else None)
        self.attached = False  # a run made elsewhere (a deployment's), taken on by this process

    def create(self) -> None:
        flow = self.flow
        name = self._first_name()
        tags = sorted(current_tags())
        run_id, answer = self.client.create_flow_run(
            flow_id=self.client.create_flow(flow.name), name=name, state=Pending().to_schema(),
            parameters=redact_data(jsonable(self.parameters)), tags=tags,  # as shown: without secret values
            parent_flow_run_id=self.parent.flow_run.id if self.parent else None,
            empirical_policy={"retries": flow.retries, "retry_delay": flow.retry_delay_seconds},
            **process_fields(),
        )  # fmt: skip
        self.run = RunInfo(id=run_id, name=name, parameters=self.parameters, tags=tags)
        self.state = State.from_schema(answer.state)
        self.context = self._new_context()
        if self.parent:
            flow_run_logger(self.parent).info(f"Created subflow run {name!r} for flow {flow.name!r}")
        else:
            get_logger("runway.engine").info(f"Created flow run {name!r} for flow {flow.name!r}")

    def _first_name(self) -> str:
        """The name the run is created with. As in Prefect 2, a flow_run_name callable runs in the
        run's context (sdk.runtime.flow_run answers there) and a template gets a subflow's resolved
        parameters: then the run is created under a generated name and renamed as it starts."""
        from sdk.flows import generated_run_name

        custom = self.flow.flow_run_name
        self.rename = bool(custom) and (callable(custom) or inputs.unresolved(self.parameters))
        if not self.rename:
            return redact(self.flow.flow_run_name_for(self.parameters))  # a template may name a secret parameter
        if isinstance(custom, str):
            custom.format(**self.parameters)  # a template naming no parameter fails here, at the call
        return generated_run_name()

    def _rename(self, parameters: dict[str, Any]) -> None:
        """Name the run from its flow_run_name, in its context (see `_first_name`)."""
        self.rename = False
        with enter(self.context):
            name = redact(self.flow.flow_run_name_for(parameters))
        if name != self.run.name:
            self.client.set_flow_run_name(self.run.id, name)
            self.logger.info(f"Renamed flow run {self.run.name!r} to {name!r}")
            self.run.name = name

    def attach(self, flow_run_id: UUID) -> None:
        """Take on a run created elsewhere (a deployment's run, given to this agent) instead of
        creating one: its name, parameters and tags are the run's; from here on the engine runs
        it as it runs any other."""
        found = self.client.read_flow_run(flow_run_id)
        self.parameters = found["parameters"]
        self.run = RunInfo(id=flow_run_id, name=found["name"], parameters=self.parameters, tags=found["tags"],
                           run_count=found["run_count"])  # fmt: skip
        self.state = State.from_schema(found["state"])
        self.attached = True
        self.rename = bool(self.flow.flow_run_name)  # a deployment's run is named by its flow too, as in Prefect 2
        self.context = self._new_context()
        get_logger("runway.engine").info(f"Running flow run {found['name']!r} of flow {self.flow.name!r}")

    def _new_context(self) -> FlowRunContext:
        """A fresh context per attempt: task numbering restarts so a retry finds its earlier task runs."""
        flow = self.flow
        return FlowRunContext(
            client=self.client, flow=flow, flow_run=self.run, task_runner=flow.task_runner.duplicate(),
            result_storage=self._inherited("result_storage", flow.result_storage),
            persist_result=self._inherited("persist_result", flow.persist_result),
            log_prints=bool(self._inherited("log_prints", flow.log_prints)), cancel_scope=self.cancel_scope,
            engine=self,
        )  # fmt: skip

    def _inherited(self, option: str, own: Any) -> Any:
        """A subflow's option left unset (None) takes its parent flow run's."""
        if own is not None or self.parent is None:
            return own
        return getattr(self.parent, option)

    @property
    def logger(self) -> logging.LoggerAdapter:
        return flow_run_logger(self.context)

    def steps(self) -> Steps:
        """Orchestrate the run; whatever interrupts the engine, the run ends recorded, never Running."""
        try:
            return (yield from self._orchestrate())
        except GeneratorExit:
            raise
        except BaseException as exc:
            if not self._crash_recorded:
                self._crash(exc)
            raise

    def _orchestrate(self) -> Steps:
        try:
            self._resolve_upstream()
        except UpstreamTaskError as exc:  # as for a task: the subflow stays Pending, NotReady, and is not run
            self.state = yield from propose(self.client, Pending(message=str(exc), name="NotReady"),
                                            flow_run_id=self.run.id, force=True)  # fmt: skip
            self._log_final()
            return self.state
        try:
            parameters = self._validated()
        except ParameterTypeError as exc:
            self.logger.error(str(exc))
            failed = Failed(message=f"Validation of flow parameters failed with error: {exc}", data=exc)
            return (yield from self._finish_with(failed))
        if self.rename:
            self._rename(parameters)
        try:
            self.state = yield from self._propose(Running())
            while self.state.is_running():
                self.run.run_count += 1
                outcome = yield from self._call(parameters)
                if isinstance(outcome.error, Pause):  # suspended: resumed, the run starts again elsewhere
                    self.logger.info("Suspended: this process stops; the run starts again when it is resumed")
                    return self.state
                self.state = yield from self._propose(self._final_state(outcome))
                if self.state.is_cancelling():  # cancelled as it finished, before the watcher noticed
                    self.state = yield from self._propose(self._cancelled())
                if self.state.is_scheduled():
                    self.logger.info(
                        f"Received non-final state {self.state.name!r} when proposing final state "
                        f"'Failed' and will attempt to run again..."
                    )
                    self.context = self._new_context()
                    self.state = yield from self._propose(Running())
        except Abort as abort:
            self.logger.error(f"Stopped orchestrating this flow run: {abort}")
            return self.state
        self._log_final()
        run_hooks(self.flow, self.run, self.state, self.logger)
        return self.state

    def _resolve_upstream(self) -> None:
        """A subflow's parameters may hold futures of its parent's task runs, and it may be called
        `wait_for=` some: as in Prefect 2, it waits for them and gets their results."""
        if self.parent is not None:
            self.parameters = self.run.parameters = inputs.resolve(self.parameters, self.wait_for)

    def _validated(self) -> dict[str, Any]:
        if not self.flow.should_validate_parameters:
            return self.parameters
        return validate(self.flow.fn, self.parameters)

    def _call(self, parameters: dict[str, Any]) -> Steps:
        flow = self.flow
        call = user_call(flow.fn, parameters, context=self.context, timeout=flow.timeout_seconds,
                         error=FlowRunTimeoutError, kind="Flow")  # fmt: skip
        runner = self.context.task_runner
        self.cancel_scope.on_cancel(runner.cancel)
        try:
            with _sigterm_raises(), cancellation.watcher.watching(self.client, self.run.id, self.cancel_scope):
                outcome: Outcome = yield call
        except BaseException as exc:
            self._crash(exc)
            runner.shutdown(wait=False)
            raise
        if self._was_cancelled(outcome):
            runner.cancel()
        else:
            runner.shutdown(wait=True)  # submitted task runs finish before the flow run does
        return outcome

    def _was_cancelled(self, outcome: Outcome) -> bool:
        """Cancelled from outside, or interrupted by the cancellation of a flow run it runs in."""
        return self.cancel_scope.requested or isinstance(outcome.error, FlowRunCancelledError)

    def _cancelled(self) -> State:
        reason = self.cancel_scope.reason or "the flow run was cancelled"
        return Cancelled(message=f"Flow run was cancelled: {reason}")

    def _crash(self, exc: BaseException) -> None:
        self._crash_recorded = True
        if isinstance(exc, TerminationSignal):
            message = "Execution was aborted by a termination signal."
        elif isinstance(exc, KeyboardInterrupt):
            message = "Execution was aborted by an interrupt signal."
        else:
            message = f"Execution was interrupted: {type(exc).__name__}: {exc}"
        try:
            crashed = self._following(Crashed(message=message, data=exc))
            self.state = propose_now(self.client, crashed, flow_run_id=self.run.id)
        except Exception:  # recording failed: say so, and let the original exception go on
            self.logger.exception("could not record the crash of this flow run")
            return
        self.logger.error(f"Crashed: {message}")
        run_hooks(self.flow, self.run, self.state, self.logger)

    def _final_state(self, outcome: Outcome) -> State:
        if self._was_cancelled(outcome):
            return self._cancelled()
        storage = self.context.result_storage
        if outcome.error is None:
            unobserved = [f.final_state() for f in self.context.futures if not f.observed]
            try:
                return flow_return_state(outcome.value, unobserved, persist=self._persist(), storage=storage)
            except Exception as exc:  # e.g. persist_result=True and the value cannot be stored
                self.logger.error("The flow run's result could not be recorded:", exc_info=exc)
                return exception_state(exc, kind="Flow", storage=storage)
        self.logger.error("Encountered exception during execution:", exc_info=outcome.error)
        return exception_state(outcome.error, kind="Flow", storage=storage)

    def _persist(self) -> bool | None:
        """persist_result as inherited, else RUNWAY_PERSIST_RESULTS (None: best effort)."""
        if self.context.persist_result is not None:
            return self.context.persist_result
        return None if get_settings().persist_results else False

    def following_id(self) -> str | None:
        """The id of the state a proposal by this process follows (see `_following`)."""
        return self._following(Running()).details.from_state_id

    def adopt(self, state: State) -> None:
        """The run moved on through a call other than a proposal of this engine (a pause, a resume)."""
        self.state = state

    def _propose(self, state: State) -> Steps:
        return (yield from propose(self.client, self._following(state), flow_run_id=self.run.id))

    def _following(self, state: State) -> State:
        """A run taken on from elsewhere proposes each state as following the one this process last
        saw: if the run has moved on (its agent was presumed dead and it went to another), the
        orchestrator aborts the proposal and this process stops (AbortSupersededProposals).
        Any other proposal follows nothing, even a task run's state the flow returns as its own."""
        mine = str(self.state.id) if self.attached and self.state is not None and self.state.id is not None else None
        if state.details.from_state_id != mine:  # e.g. the final state of a task run this flow returns
            state = dataclasses.replace(state, details=state.details.copy())
            state.details.from_state_id = mine
        return state

    def _finish_with(self, state: State) -> Steps:
        self.state = yield from self._propose(state)
        self._log_final()
        run_hooks(self.flow, self.run, self.state, self.logger)
        return self.state

    def _log_final(self) -> None:
        level = logging.INFO if self.state.is_completed() else logging.ERROR
        self.logger.log(level, f"Finished in state {self.state!r}")


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """In the main thread, turn SIGTERM into TerminationSignal so the run is recorded Crashed."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise TerminationSignal(signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
