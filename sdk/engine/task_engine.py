"""Orchestrating one task run: create, resolve inputs, start, call, finish, retry (see sdk.engine)."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from orchestrator.schemas import OrchestrationResult
from sdk.client.base import OrchestrationClient
from sdk.context import FlowRunContext, RunInfo, TaskRunContext, current_tags, enter
from sdk.engine import inputs
from sdk.engine.driver import Outcome, Steps, user_call
from sdk.engine.final_state import completed_state, exception_state
from sdk.engine.hooks import run_hooks
from sdk.engine.hosts import process_fields
from sdk.engine.propose import propose, propose_now
from sdk.engine.remote import NotClaimed
from sdk.exceptions import Abort, FlowRunCancelledError, TaskRunTimeoutError, UpstreamTaskError
from sdk.filesystems import LocalFileSystem
from sdk.logging import RunLoggerAdapter, flow_run_logger, task_run_logger
from sdk.redaction import redact
from sdk.settings import get_settings
from sdk.states import Cancelled, Crashed, Pending, Running, State

if TYPE_CHECKING:
    from sdk.tasks import Task


class TaskRunEngine:
    """The engine of one task run; `create()` in the caller, then `steps()` under a driver."""

    def __init__(self, task: Task, parameters: dict[str, Any], *, client: OrchestrationClient,
                 flow_ctx: FlowRunContext | None, wait_for: list[Any] | None = None) -> None:  # fmt: skip
        self.task, self.parameters, self.client = task, parameters, client
        self.flow_ctx, self.wait_for = flow_ctx, wait_for
        self.run: RunInfo | None = None
        self.state: State | None = None
        self.created = False
        self._crash_recorded = False
        self.recorded: State | None = None  # set by sdk.transactions: a committed transaction holds this run's result
        self.claim: dict[str, Any] | None = None  # set by a worker (sdk/engine/remote.py): claim the run as it starts
        self.rename = False  # named by a task_run_name from upstream results: renamed once they are known

    # --- 1. create ---------------------------------------------------------------
    def prepare(self) -> None:
        """Name the run `<task>-<n>` after its place in the flow run and build its context (no I/O).

        The id is made here so `cache_key_fn` and the logger can see the run before it is stored.
        """
        flow_ctx, task = self.flow_ctx, self.task
        self.dynamic_key = flow_ctx.next_dynamic_key(task.task_key) if flow_ctx else uuid4().hex[:8]
        tags = sorted(current_tags() | set(task.tags))
        self.run = RunInfo(id=uuid4(), name=f"{task.name}-{self.dynamic_key}", parameters=self.parameters, tags=tags)
        self.context = TaskRunContext(
            client=self.client, task=task, task_run=self.run, flow_run_context=flow_ctx,
            log_prints=task.log_prints if task.log_prints is not None else bool(flow_ctx and flow_ctx.log_prints),
        )  # fmt: skip
        self.created = False
        if task.task_run_name is not None:
            # As in Prefect 2, a custom name is made from the parameters the task gets: with an
            # upstream future among them, the run is renamed once its result is known.
            self.rename = inputs.unresolved(self.parameters)
            if not self.rename:
                self.run.name = self._custom_name()
            elif isinstance(task.task_run_name, str):
                task.task_run_name_for(self.parameters)  # a template naming no parameter fails here, at the call

    def _custom_name(self) -> str:
        """The task's task_run_name for this run, made in the run's context (a callable may read
        `sdk.runtime.task_run`); secret values a template names are redacted."""
        with enter(self.context):
            return redact(self.task.task_run_name_for(self.run.parameters))

    def _rename(self) -> None:
        """Name the run now that its parameters are resolved (see `prepare`)."""
        self.rename, name = False, self._custom_name()
        if name != self.run.name:
            self.client.set_task_run_name(self.run.id, name)
            self.logger.debug(f"Renamed task run {self.run.name!r} to {name!r}")
            self.run.name = name

    def create(self, then: State | None = None) -> OrchestrationResult:
        """Store the run Pending; with `then`, propose it in the same call (a direct call starts at once)."""
        run_id, answer = self.client.create_task_run(**self.creation(then))
        self.created_as(run_id, answer, then)
        return answer

    def creation(self, then: State | None = None) -> dict[str, Any]:
        """The client's arguments that create this run (sent alone, or with others by `.map()`)."""
        flow_ctx, task = self.flow_ctx, self.task
        return dict(
            flow_run_id=flow_ctx.flow_run.id if flow_ctx else None, task_key=task.task_key,
            dynamic_key=self.dynamic_key, name=self.run.name, state=Pending().to_schema(),
            tags=self.run.tags, empirical_policy=task.empirical_policy,
            task_inputs=inputs.upstream_runs(self.parameters, self.wait_for), run_id=self.run.id,
            then=then.to_schema() if then else None, **process_fields(),
        )  # fmt: skip

    def created_as(self, run_id: UUID, answer: OrchestrationResult, then: State | None = None) -> None:
        """Adopt the orchestrator's answer to the creation and log it."""
        self.run.id, self.created = run_id, True  # a retried flow run finds its earlier task run
        if then is None:
            self.state = State.from_schema(answer.state)
        creator = flow_run_logger(self.flow_ctx) if self.flow_ctx else self.logger
        creator.engine_line(logging.INFO, f"Created task run {self.run.name!r} for task {self.task.name!r}")

    @property
    def logger(self) -> RunLoggerAdapter:
        return task_run_logger(self.context)

    # --- 2 to 5 --------------------------------------------------------------------
    def steps(self) -> Steps:
        """Orchestrate the run; whatever interrupts the engine, the run ends recorded, never Running."""
        try:
            return (yield from self._orchestrate())
        except (GeneratorExit, NotClaimed):  # not claimed: the run is another worker's, nothing to record
            raise
        except BaseException as exc:
            self._record_crash(exc, "the task run's engine was interrupted")
            raise

    def _orchestrate(self) -> Steps:
        if self.recorded is not None:  # done by a committed transaction: record its result, do not run it again
            yield from self._finish_with(self.recorded, force=True)
            run_hooks(self.task, self.run, self.state, self.logger)
            return self.state
        try:
            parameters = self.run.parameters = inputs.resolve(self.parameters, self.wait_for)
        except UpstreamTaskError as exc:
            if self._flow_cancelled():  # its upstream was stopped by the cancellation: so is this run
                return (yield from self._finish_with(Cancelled(message="Not run: the flow run was cancelled"), force=False))
            return (yield from self._finish_with(Pending(message=str(exc), name="NotReady"), force=True))
        if self.rename:
            self._rename()
        try:
            cache_key = self._cache_key(parameters)
            self.state = yield from self._start(cache_key)
            while self.state.is_running():
                outcome = yield from self._call(parameters)
                final = self._final_state(outcome, cache_key)
                try:
                    self.state = yield from self._propose(self._following(final))
                except Abort as abort:  # this attempt was taken over: its outcome is not ours to record
                    return self._superseded(abort)
                if self.state.is_scheduled():
                    self.logger.info(
                        f"Received non-final state {self.state.name!r} when proposing final state "
                        f"'Failed' and will attempt to run again..."
                    )
                    self.state = yield from self._start(cache_key)
        except Abort as abort:
            return (yield from self._finish_with(Cancelled(message=f"Not run: {abort}"), force=True))
        self._log_final()
        run_hooks(self.task, self.run, self.state, self.logger)
        return self.state

    def _flow_cancelled(self) -> bool:
        """Its flow run was cancelled in this process: a forced NotReady could overwrite the Cancelled
        state the flow run's end gave this run, so it is not proposed."""
        scope = self.flow_ctx.cancel_scope if self.flow_ctx else None
        return scope is not None and scope.requested

    def _call(self, parameters: dict[str, Any]) -> Steps:
        task = self.task
        call = user_call(task.fn, parameters, context=self.context, timeout=task.timeout_seconds,
                         error=TaskRunTimeoutError, kind="Task")  # fmt: skip
        try:
            outcome: Outcome = yield call
        except BaseException as exc:  # the process is being interrupted: record it, let it go on
            self._record_crash(exc, "execution was interrupted")
            raise
        return outcome

    def _record_crash(self, exc: BaseException, why: str) -> None:
        """Propose Crashed once, naming the cause; a failure to record it must not hide `exc`."""
        if self._crash_recorded or self.run is None:
            return
        self._crash_recorded = True
        if not self.created:
            return  # nothing stored yet: there is no run to leave behind
        message = f"Crashed: {why}: {type(exc).__name__}: {exc}".rstrip(": ")
        try:
            crashed = self._following(Crashed(message=message, data=exc))
            self.state = propose_now(self.client, crashed, task_run_id=self.run.id)
            self.logger.error(message)
        except Abort as abort:
            self._superseded(abort)
        except Exception:
            self.logger.exception("could not record the crash of this task run")

    def _start(self, cache_key: str | None) -> Steps:
        running = Running()
        running.details.cache_key = cache_key
        running.details.refresh_cache = bool(self.task.refresh_cache)
        if self.claim is not None:
            state = yield from propose(self.client, running, task_run_id=self.run.id, answer=self._claim(running),
                                       run=self.run)  # fmt: skip
        elif self.created:
            state = yield from propose(self.client, running, task_run_id=self.run.id, run=self.run)
        else:
            answer = self.create(then=running)
            if self.flow_ctx:
                flow_run_logger(self.flow_ctx).info(f"Executing {self.run.name!r} immediately...")
            state = yield from propose(self.client, running, task_run_id=self.run.id, answer=answer, run=self.run)
        return state

    def _claim(self, running: State) -> OrchestrationResult:
        """A worker's first start: claim the run and propose Running in one call; NotClaimed if it is
        another worker's or finished. A later start (a retry run in place) is this worker's already."""
        claim, self.claim = self.claim, None
        status, reason, answer = self.client.claim_and_start_task_run(self.run.id, running.to_schema(), **claim)
        if answer is None:
            raise NotClaimed(status, reason)
        return answer

    def _final_state(self, outcome: Outcome, cache_key: str | None) -> State:
        task = self.task
        if outcome.error is None:
            if isinstance(outcome.value, State):
                return outcome.value
            try:
                state = completed_state(outcome.value, persist=self._persist(), storage=self._storage())
            except Exception as exc:  # persist_result=True and the value cannot be stored
                self.logger.error("The result could not be persisted:", exc_info=exc)
                return exception_state(exc, kind="Task", storage=self._storage())
            state.details.cache_key = cache_key
            if cache_key and task.cache_expiration is not None:
                state.details.cache_expiration = datetime.now(timezone.utc) + task.cache_expiration
            return state
        exc = outcome.error
        if isinstance(exc, FlowRunCancelledError):
            self.logger.warning(f"Interrupted: {exc}")
            return Cancelled(message=f"Task run was interrupted: the flow run was cancelled: {exc}")
        self.logger.error("Encountered exception during execution:", exc_info=exc)
        state = exception_state(exc, kind="Task", storage=self._storage())
        state.details.retriable = self._retriable(state)
        return state

    def _persist(self) -> bool | None:
        """The task's persist_result, else its flow's, else RUNWAY_PERSIST_RESULTS (None: best effort)."""
        if self.task.persist_result is not None:
            return self.task.persist_result
        if self.flow_ctx is not None and self.flow_ctx.persist_result is not None:
            return self.flow_ctx.persist_result
        return None if get_settings().persist_results else False

    def _storage(self) -> LocalFileSystem | None:
        """The task's result storage, else its flow's."""
        return self.task.result_storage or (self.flow_ctx.result_storage if self.flow_ctx else None)

    def _retriable(self, state: State) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(condition(self.task, self.run, state))
        except Exception:
            self.logger.exception("retry_condition_fn raised; not retrying")
            return False

    def _cache_key(self, parameters: dict[str, Any]) -> str | None:
        if self.task.cache_key_fn is None:
            return None
        try:
            return self.task.cache_key_fn(self.context, parameters)
        except Exception:
            self.logger.exception("cache_key_fn raised; running without a cache key")
            return None

    def _following(self, state: State) -> State:
        """`state`, marked as ending the attempt that started in the current Running state.

        If the orchestrator has since given the run to another attempt (this
        worker was presumed dead and the run retried elsewhere), the proposal is
        aborted instead of overwriting that attempt's states.
        """
        if self.state is not None and self.state.is_running() and self.state.id is not None:
            state.details.from_state_id = str(self.state.id)
        return state

    def _superseded(self, abort: Abort) -> State:
        """Stop without recording anything: the run belongs to another attempt now. No hooks run here."""
        self.logger.warning(f"This attempt's outcome was not recorded: {abort}")
        try:
            current = self.client.get_task_run_states([self.run.id]).get(self.run.id)
        except Exception:  # the orchestrator is unreachable: the state this engine knew will do
            current = None
        if current is not None:
            self.state = State.from_schema(current)
        return self.state

    def _propose(self, state: State, force: bool = False) -> Steps:
        return (yield from propose(self.client, state, task_run_id=self.run.id, force=force))

    def _finish_with(self, state: State, force: bool) -> Steps:
        if not self.created:
            self.create()
        self.state = yield from self._propose(state, force=force)
        self._log_final()
        return self.state

    def _log_final(self) -> None:
        level = logging.INFO if self.state.is_completed() else logging.ERROR
        self.logger.engine_line(level, f"Finished in state {self.state!r}")
