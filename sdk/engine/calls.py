"""What calling or submitting a flow or task does: pick the context, the driver, sync or async.

An async function returns a coroutine when called from async code or outside
any run (so `asyncio.run(my_flow())` and `await my_task()` work as in Prefect 2),
and runs to completion when called from inside a synchronous run.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from sdk.client import get_client
from sdk.context import FlowRunContext, TaskRunContext
from sdk.engine.driver import run_async, run_coroutine, run_sync
from sdk.engine.flow_engine import FlowRunEngine
from sdk.engine.task_engine import TaskRunEngine
from sdk.futures import RunwayFuture, in_async_context
from sdk.logging import flow_run_logger
from sdk.logging.handlers import flush_logs
from sdk.states import State
from sdk.task_runners import BaseTaskRunner, ConcurrentTaskRunner, SequentialTaskRunner
from sdk.transactions import TaskRunTransaction, enroll

if TYPE_CHECKING:
    from sdk.flows import Flow
    from sdk.tasks import Task

_runner_outside_flows = ConcurrentTaskRunner()


def call_task(task: Task, parameters: dict[str, Any], *, wait_for: list[Any] | None, return_state: bool) -> Any:
    flow_ctx = FlowRunContext.get()
    engine = TaskRunEngine(task, parameters, client=get_client(), flow_ctx=flow_ctx, wait_for=wait_for)
    if inspect.iscoroutinefunction(task.fn):
        async def run() -> Any:
            engine.prepare()
            txn = enroll(engine)
            return _answer(_finished(txn, await run_async(engine.steps())), return_state)

        return run() if in_async_context() or flow_ctx is None else run_coroutine(run())
    engine.prepare()
    txn = enroll(engine)
    return _answer(_finished(txn, run_sync(engine.steps())), return_state)


def _finished(txn: TaskRunTransaction | None, state: State) -> State:
    """A run called inside `with transaction():` is staged on it when it completes (sdk.transactions)."""
    return txn.finished(state) if txn is not None else state


def submit_task(task: Task, parameters: dict[str, Any], *, wait_for: list[Any] | None) -> RunwayFuture:
    return submit_tasks(task, [parameters], wait_for=wait_for)[0]


def submit_tasks(task: Task, parameter_sets: list[dict[str, Any]], *, wait_for: list[Any] | None) -> list[RunwayFuture]:
    """One run per parameter set, created Pending together (one client call per chunk), then handed to the runner.

    Chunks bound how long the orchestrator is held before the first runs start. The first
    chunk is small and each next one twice as large, up to SUBMIT_CHUNK: the first runs go to
    the runner (and the workers) within milliseconds, not after 500 runs were made and logged.
    """
    flow_ctx = FlowRunContext.get()
    if TaskRunContext.get() is not None:
        # Submitted from inside a task: run it here and now. Queued in the flow's pool
        # behind the very tasks waiting on it, it could deadlock the pool.
        runner: BaseTaskRunner = SequentialTaskRunner()
    else:
        runner = flow_ctx.task_runner if flow_ctx else _runner_outside_flows
    client = get_client()
    futures, start, size = [], 0, min(FIRST_SUBMIT_CHUNK, SUBMIT_CHUNK)
    while start < len(parameter_sets):
        engines = [TaskRunEngine(task, parameters, client=client, flow_ctx=flow_ctx, wait_for=wait_for)
                   for parameters in parameter_sets[start : start + size]]  # fmt: skip
        start, size = start + size, min(size * 2, SUBMIT_CHUNK)
        for engine in engines:
            engine.prepare()
        txns = [enroll(engine) for engine in engines]
        answers = client.create_task_runs([engine.creation() for engine in engines])
        futures += [_submit_created(engine, run_id, answer, runner, flow_ctx, txn)
                    for engine, (run_id, answer), txn in zip(engines, answers, txns)]  # fmt: skip
    return futures


FIRST_SUBMIT_CHUNK, SUBMIT_CHUNK = 16, 500


def _submit_created(engine: TaskRunEngine, run_id: Any, answer: Any, runner: BaseTaskRunner,
                    flow_ctx: FlowRunContext | None, txn: TaskRunTransaction | None) -> RunwayFuture:  # fmt: skip
    engine.created_as(run_id, answer)
    if flow_ctx:
        flow_run_logger(flow_ctx).engine_line(logging.INFO, f"Submitted task run {engine.run.name!r} for execution.")
    if engine.recorded is not None:  # a committed transaction's result: recorded here, never sent to a worker
        runner = SequentialTaskRunner()
    future = RunwayFuture(engine, runner.submit_run(engine))
    if txn is not None:
        txn.watch(future)
    if flow_ctx:
        flow_ctx.futures.append(future)
    return future


def call_flow(flow: Flow, parameters: dict[str, Any], *, return_state: bool, wait_for: list[Any] | None = None) -> Any:
    parent = FlowRunContext.get()
    engine = FlowRunEngine(flow, parameters, client=get_client(), parent=parent, wait_for=wait_for)
    if inspect.iscoroutinefunction(flow.fn):
        async def run() -> Any:
            await asyncio.to_thread(engine.create)
            state = await run_async(engine.steps())
            return _answer(state, return_state, flush=parent is None)

        return run() if in_async_context() or parent is None else run_coroutine(run())
    engine.create()
    return _answer(run_sync(engine.steps()), return_state, flush=parent is None)


def run_flow_run(flow: Flow, flow_run_id: Any) -> State:
    """Run the existing flow run `flow_run_id` (a deployment's, on its agent) through the same engine
    as a call of the flow; returns its final state."""
    engine = FlowRunEngine(flow, {}, client=get_client(), parent=None)
    engine.attach(flow_run_id)
    if inspect.iscoroutinefunction(flow.fn):
        return _answer(asyncio.run(run_async(engine.steps())), return_state=True, flush=True)
    return _answer(run_sync(engine.steps()), return_state=True, flush=True)


def _answer(state: State, return_state: bool, flush: bool = False) -> Any:
    """What the caller gets: the state, or its result (raising if the run failed)."""
    if flush:
        flush_logs()  # a finished top-level flow run has all its lines stored
    return state if return_state else state.result()
