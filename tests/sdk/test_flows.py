"""Flows: calling, parameters, subflows, retries, timeouts, final states."""
from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.runs.models import FlowRun
from sdk import flow, task
from sdk.exceptions import FlowRunTimeoutError, ParameterBindError, ParameterTypeError
from sdk.states import Completed, Failed
from tests.sdk.conftest import latest_flow_run, logs_of, state_names


@task
def add_one(x: int) -> int:
    return x + 1


def test_a_flow_returns_its_value_and_records_pending_running_completed(unique_name):
    @flow(name=unique_name)
    def pipeline(xs: list[int]) -> list[int]:
        return [add_one(x) for x in xs]

    assert pipeline([1, 2]) == [2, 3]
    run = latest_flow_run(pipeline)
    assert state_names(run) == ["Pending", "Running", "Completed"]
    assert run.state_type == "COMPLETED" and run.run_count == 1
    assert run.start_time and run.end_time and run.end_time >= run.start_time
    assert run.parameters == {"xs": [1, 2]}
    assert [t.name for t in run.task_runs.order_by("expected_start_time")] == ["add_one-0", "add_one-1"]
    assert all(t.state_type == "COMPLETED" for t in run.task_runs.all())


def test_flow_names_replace_underscores_with_hyphens():
    @flow
    def my_etl_job():
        return 1

    assert my_etl_job.name == "my-etl-job"


def test_parameters_are_coerced_to_their_type_hints():
    @flow
    def typed(n: int, ratio: float = 1.0) -> tuple:
        return n, ratio

    assert typed("3", ratio="0.5") == (3, 0.5)


def test_a_bad_parameter_fails_the_run_before_any_task_runs_naming_the_parameter(unique_name):
    calls = []

    @task
    def record():
        calls.append(1)

    @flow(name=unique_name)
    def typed(count: int):
        record()

    with pytest.raises(ParameterTypeError, match="count"):
        typed("many")
    run = latest_flow_run(typed)
    assert run.state_type == "FAILED"
    assert "count" in run.state.message
    assert calls == [] and run.task_runs.count() == 0


def test_validation_can_be_turned_off():
    @flow(validate_parameters=False)
    def untyped(n: int):
        return n

    assert untyped("3") == "3"


def test_wrong_arguments_raise_a_type_error_like_a_plain_call():
    @flow
    def one_arg(x):
        return x

    with pytest.raises(ParameterBindError):
        one_arg(1, 2)
    with pytest.raises(TypeError):
        one_arg()


def test_an_exception_in_the_flow_fails_the_run_and_is_raised(unique_name):
    @flow(name=unique_name)
    def broken():
        raise ValueError("bad input file")

    with pytest.raises(ValueError, match="bad input file"):
        broken()
    run = latest_flow_run(broken)
    assert run.state_type == "FAILED"
    assert "ValueError: bad input file" in run.state.message
    assert any("Traceback" in line and "bad input file" in line for line in logs_of(run))


def test_return_state_returns_the_final_state_instead_of_raising():
    @flow
    def broken():
        raise KeyError("x")

    state = broken(return_state=True)
    assert state.is_failed()
    with pytest.raises(KeyError):
        state.result()
    assert isinstance(state.result(raise_on_failure=False), KeyError)


def test_a_flow_that_handles_a_task_failure_completes(unique_name):
    @task
    def fails():
        raise RuntimeError("flaky service")

    @flow(name=unique_name)
    def tolerant():
        try:
            fails()
        except RuntimeError:
            return "recovered"

    assert tolerant() == "recovered"
    run = latest_flow_run(tolerant)
    assert run.state_type == "COMPLETED"
    assert run.task_runs.get().state_type == "FAILED"


def test_a_flow_returning_a_state_takes_that_state():
    @flow
    def decides():
        return Failed(message="no data today")

    state = decides(return_state=True)
    assert state.is_failed() and state.message == "no data today"

    @flow
    def fine():
        return Completed(message="ok")

    assert fine(return_state=True).is_completed()


def test_subflow_runs_record_their_parent(unique_name):
    @flow(name=unique_name + "-child")
    def child(x: int) -> int:
        return add_one(x)

    @flow(name=unique_name)
    def parent() -> int:
        return child(1) + child(2)

    assert parent() == 5
    parent_run = latest_flow_run(parent)
    children = FlowRun.objects.filter(parent_flow_run=parent_run)
    assert children.count() == 2
    assert all(c.state_type == "COMPLETED" for c in children)


@task
def fails() -> None:
    raise ValueError("upstream broke")


def test_a_subflow_gets_its_parents_futures_resolved_and_waits_for_wait_for(unique_name):
    """As in Prefect 2: futures among a subflow's arguments arrive as their results; `wait_for`
    orders it after runs it takes nothing from; a failed upstream leaves it NotReady, not run,
    unless the upstream is wrapped in allow_failure."""
    from sdk import allow_failure

    ran: list[int] = []

    @flow(name=unique_name + "-child")
    def child(x: int) -> int:
        ran.append(x)
        return x * 10

    @flow(name=unique_name)
    def parent() -> tuple:
        one = add_one.submit(1)
        resolved = child(one)
        ordered = child(3, wait_for=[one])
        blocked = child(4, wait_for=[fails.submit()], return_state=True)
        excused = child(5, wait_for=[allow_failure(fails.submit())])
        return resolved, ordered, blocked.name, blocked.message, excused

    assert parent() == (20, 30, "NotReady", "Upstream task run 'fails-0' did not reach a 'COMPLETED' state.", 50)
    assert ran == [2, 3, 5]
    children = FlowRun.objects.filter(parent_flow_run=latest_flow_run(parent)).order_by("created")
    assert [state_names(c) for c in children] == [["Pending", "Running", "Completed"]] * 2 + [
        ["Pending", "NotReady"], ["Pending", "Running", "Completed"]]  # fmt: skip


def test_flow_retries_rerun_the_flow_but_not_its_completed_tasks(unique_name):
    attempts = {"flow": 0, "first": 0}

    @task
    def first() -> int:
        attempts["first"] += 1
        return 10

    @flow(name=unique_name, retries=1, retry_delay_seconds=0)
    def flaky() -> int:
        attempts["flow"] += 1
        value = first()
        if attempts["flow"] == 1:
            raise ConnectionError("database went away")
        return value

    assert flaky() == 10
    assert attempts == {"flow": 2, "first": 1}
    run = latest_flow_run(flaky)
    assert state_names(run) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert run.run_count == 2
    assert run.task_runs.count() == 1


def test_a_flow_timeout_fails_the_run_as_timed_out(unique_name):
    @flow(name=unique_name, timeout_seconds=0.3)
    def sleepy():
        time.sleep(5)

    started = time.monotonic()
    with pytest.raises(FlowRunTimeoutError):
        sleepy()
    assert time.monotonic() - started < 3
    run = latest_flow_run(sleepy)
    assert (run.state_type, run.state_name) == ("FAILED", "TimedOut")
    assert "exceeded timeout of 0.3 seconds" in run.state.message


def test_an_async_flow_is_awaited_and_mixes_sync_and_async_tasks(unique_name):
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    @flow(name=unique_name)
    async def mixed() -> list[int]:
        together = await asyncio.gather(double(1), double(2))
        return [*together, add_one(5)]

    assert asyncio.run(mixed()) == [2, 4, 6]
    assert latest_flow_run(mixed).task_runs.count() == 3


def test_an_async_subflow_called_from_a_sync_flow_runs_to_completion():
    @flow
    async def inner() -> int:
        return 41

    @flow
    def outer() -> int:
        return inner() + 1

    assert outer() == 42


def test_hooks_run_once_with_the_final_state_and_a_failing_hook_does_not_change_it(unique_name):
    seen = []

    def remember(flow_, run, state):
        seen.append((flow_.name, state.type.value))

    def explode(flow_, run, state):
        raise RuntimeError("hook bug")

    @flow(name=unique_name, on_completion=[explode, remember], on_failure=[remember])
    def ok():
        return 1

    assert ok() == 1
    assert seen == [(unique_name, "COMPLETED")]
    assert any("hook bug" in line for line in logs_of(latest_flow_run(ok)))


def test_with_options_changes_options_and_keeps_the_function():
    @flow
    def base():
        return "same"

    other = base.with_options(name="renamed", retries=2)
    assert (other.name, other.retries, other.fn) == ("renamed", 2, base.fn)
    assert other() == "same"
    with pytest.raises(TypeError, match="colour"):
        base.with_options(colour="red")


def test_bad_flow_options_are_refused_with_the_option_named():
    with pytest.raises(ValueError, match="retries"):
        flow(retries=-1)(lambda: None)
    with pytest.raises(ValueError, match="timeout_seconds"):
        flow(timeout_seconds=0)(lambda: None)


def test_a_flow_run_name_callable_runs_in_the_run_s_context_and_a_template_gets_resolved_parameters(unique_name):
    """As in Prefect 2: the callable reads sdk.runtime.flow_run (its own run's, also in a subflow)
    and a subflow's template names the upstream result, not the future."""
    from sdk import runtime

    def by_parameters() -> str:
        return f"{runtime.flow_run.flow_name}-on-{runtime.flow_run.parameters['day']}"

    @flow(name=unique_name + "-child", flow_run_name="child-of-{x}")
    def child(x: int) -> int:
        return x

    @flow(name=unique_name, flow_run_name=by_parameters)
    def parent(day: str) -> int:
        return child(add_one.submit(1))

    assert parent("monday") == 2
    run = latest_flow_run(parent)
    assert run.name == f"{unique_name}-on-monday"
    assert [c.name for c in FlowRun.objects.filter(parent_flow_run=run)] == ["child-of-2"]


def test_a_run_made_elsewhere_is_named_by_its_flow_run_name_as_it_starts(unique_name):
    """A deployment's run, taken on by an agent: as in Prefect 2, the flow's flow_run_name names it."""
    from orchestrator.runs.services import flow_get_or_create, flow_run_create
    from orchestrator.schemas import State as ServerState, StateType
    from sdk.engine.calls import run_flow_run

    @flow(name=unique_name, flow_run_name="report-{day}")
    def report(day: str) -> str:
        return day.upper()

    run, _ = flow_run_create(flow_id=flow_get_or_create(name=unique_name).id, name="scheduled-name",
                             state=ServerState(type=StateType.PENDING), parameters={"day": "friday"})  # fmt: skip
    assert run_flow_run(report, run.id).result() == "FRIDAY"
    run.refresh_from_db()
    assert run.name == "report-friday"
    assert "Renamed flow run 'scheduled-name' to 'report-friday'" in logs_of(run)
