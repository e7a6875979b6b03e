"""Tasks: plain calls, retries, timeouts, caching, options, calls outside flows."""
from __future__ import annotations

import datetime
import time

import pytest

from orchestrator.runs.models import TaskRun
from sdk import flow, task
from sdk.exceptions import TaskRunTimeoutError
from sdk.tasks import exponential_backoff, task_input_hash
from tests.sdk.conftest import latest_flow_run, logs_of, run_script, state_names


def test_task_fn_is_the_plain_function_for_unit_tests():
    @task
    def square(x: int) -> int:
        return x * x

    assert square.fn(4) == 16
    assert square.name == "square" and square.__name__ == "square"


def test_a_failing_task_is_retried_after_its_delay_and_completes(unique_name):
    attempts = []

    @task(retries=3, retry_delay_seconds=0.2)
    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("timeout talking to API")
        return "ok"

    @flow(name=unique_name)
    def pipeline():
        return flaky()

    assert pipeline() == "ok"
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.19 and attempts[2] - attempts[1] >= 0.19
    task_run = latest_flow_run(pipeline).task_runs.get()
    assert state_names(task_run) == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip
    assert task_run.run_count == 3


def test_a_task_out_of_retries_fails_with_its_exception_and_traceback_logged(unique_name):
    @task(retries=1)
    def always_fails():
        raise ZeroDivisionError("division by zero in step 3")

    @flow(name=unique_name)
    def pipeline():
        always_fails()

    with pytest.raises(ZeroDivisionError):
        pipeline()
    run = latest_flow_run(pipeline)
    task_run = run.task_runs.get()
    assert task_run.state_type == "FAILED" and task_run.run_count == 2
    assert "ZeroDivisionError: division by zero in step 3" in task_run.state.message
    assert task_run.state.result["type"] == "exception"
    assert "Traceback" in task_run.state.result["traceback"]
    assert sum("Traceback" in line for line in logs_of(run)) >= 2
    assert run.state_type == "FAILED"


def test_retry_delays_can_be_a_list_indexed_by_attempt(unique_name):
    attempts = []

    @task(retries=2, retry_delay_seconds=[0.05, 0.3])
    def flaky():
        attempts.append(time.monotonic())
        raise ValueError("no")

    @flow(name=unique_name)
    def pipeline():
        return flaky(return_state=True)

    assert pipeline(return_state=True).is_failed()
    assert len(attempts) == 3
    assert 0.04 <= attempts[1] - attempts[0] < 0.3
    assert attempts[2] - attempts[1] >= 0.29


def test_a_retry_condition_that_says_no_stops_retries():
    attempts = []

    def only_connection_errors(task_, task_run, state) -> bool:
        return isinstance(state.result(raise_on_failure=False), ConnectionError)

    @task(retries=5, retry_condition_fn=only_connection_errors)
    def bad_data():
        attempts.append(1)
        raise ValueError("corrupt row")

    @flow
    def pipeline():
        return bad_data(return_state=True)

    assert pipeline(return_state=True).is_failed()
    assert len(attempts) == 1


def test_exponential_backoff_gives_doubling_delays():
    @task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2))
    def t():
        pass

    assert t.retry_delay_seconds == [2, 4, 8]


def test_a_task_timeout_fails_it_as_timed_out_with_timeout_error(unique_name):
    @task(timeout_seconds=0.2)
    def hangs():
        time.sleep(5)

    @flow(name=unique_name)
    def pipeline():
        hangs()

    started = time.monotonic()
    with pytest.raises(TaskRunTimeoutError) as caught:
        pipeline()
    assert isinstance(caught.value, TimeoutError)
    assert time.monotonic() - started < 3
    task_run = latest_flow_run(pipeline).task_runs.get()
    assert (task_run.state_type, task_run.state_name) == ("FAILED", "TimedOut")


def test_a_submitted_task_times_out_in_its_worker_thread(unique_name):
    @task(timeout_seconds=0.2)
    def spins():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pass

    @flow(name=unique_name)
    def pipeline():
        return spins.submit().wait()

    started = time.monotonic()
    state = pipeline(return_state=True)
    assert state.name == "TimedOut"
    assert time.monotonic() - started < 3


def test_a_timeout_cannot_be_swallowed_by_except_exception(unique_name):
    @task(timeout_seconds=0.2)
    def stubborn():
        try:
            time.sleep(5)
        except Exception:
            return "swallowed"

    @flow(name=unique_name)
    def pipeline():
        return stubborn(return_state=True)

    assert pipeline(return_state=True).name == "TimedOut"


def test_a_cached_task_returns_the_stored_result_without_running(unique_name):
    calls = []

    @task(cache_key_fn=task_input_hash, cache_expiration=datetime.timedelta(hours=1))
    def expensive(x: int) -> dict:
        calls.append(x)
        return {"value": x * 10, "marker": unique_name}

    @flow(name=unique_name)
    def pipeline():
        first = expensive(7)
        second = expensive(7, return_state=True)
        return [first, (second.name, second.result()), expensive(8)]

    first, (name, second), third = pipeline()
    assert first == {"value": 70, "marker": unique_name} and third["value"] == 80
    assert name == "Cached" and second == first
    assert calls == [7, 8]


def test_the_cache_is_shared_across_processes(unique_name):
    code = f"""
from sdk import flow, task
from sdk.tasks import task_input_hash

@task(cache_key_fn=task_input_hash)
def slow_square(x):
    print("RAN", flush=True)
    return (x * x, "tuple survives")

@flow(name={unique_name!r})
def f():
    state = slow_square(9, return_state=True)
    return state.name, state.result()

name, value = f()
print(name, value)
"""
    first = run_script(code)
    second = run_script(code)
    assert first.returncode == 0, first.stderr
    assert "RAN" in first.stdout and "Completed (81, 'tuple survives')" in first.stdout
    assert "RAN" not in second.stdout and "Cached (81, 'tuple survives')" in second.stdout


def test_an_expired_cache_entry_is_not_used():
    calls = []

    @task(cache_key_fn=lambda ctx, params: "fixed-key-expiry-test", cache_expiration=datetime.timedelta(seconds=0.2))
    def source():
        calls.append(1)
        return len(calls)

    @flow
    def pipeline():
        return source()

    assert pipeline() == 1
    assert pipeline() == 1
    time.sleep(0.3)
    assert pipeline() == 2


def test_refresh_cache_runs_again_and_updates_the_entry():
    calls = []

    @task(cache_key_fn=lambda ctx, params: "fixed-key-refresh-test")
    def source():
        calls.append(1)
        return len(calls)

    @flow
    def pipeline(refresh: bool):
        return source.with_options(refresh_cache=refresh)()

    assert pipeline(False) == 1
    assert pipeline(True) == 2
    assert pipeline(False) == 2


def test_a_task_called_outside_a_flow_runs_and_is_recorded():
    @task(name="standalone-task-test")
    def standalone(x):
        return x + 1

    assert standalone(1) == 2
    run = TaskRun.objects.filter(name__startswith="standalone-task-test").latest("created")
    assert run.flow_run_id is None and run.state_type == "COMPLETED"


def test_task_options_are_validated_with_the_option_named():
    with pytest.raises(ValueError, match="retries"):
        task(retries=1.5)(lambda: None)
    with pytest.raises(ValueError, match="retry_delay_seconds"):
        task(retry_delay_seconds=[1, -2])(lambda: None)
    with pytest.raises(ValueError, match="persist"):
        task(cache_key_fn=task_input_hash, persist_result=False)(lambda: None)


def test_tags_from_the_task_and_the_tags_context_are_recorded():
    from sdk import tags

    @task(tags=["db"])
    def tagged():
        return 1

    @flow
    def pipeline():
        with tags("nightly"):
            tagged()

    pipeline()
    assert TaskRun.objects.filter(name__startswith="tagged-").latest("created").tags == ["db", "nightly"]


def test_a_task_run_name_is_made_from_the_parameters_the_task_gets(unique_name):
    """As in Prefect 2: a template gets upstream results, not futures (the run is renamed once they
    are known), and a callable runs in the run's context, where sdk.runtime.task_run answers."""
    from sdk import runtime

    @task
    def one() -> int:
        return 1

    @task(task_run_name="proc-{x}")
    def proc(x: int) -> int:
        return x

    def from_runtime() -> str:
        return f"{runtime.task_run.task_name}-of-{runtime.task_run.parameters['x']}"

    @task(task_run_name=from_runtime)
    def named(x: int) -> int:
        return x

    @flow(name=unique_name)
    def pipeline() -> list[int]:
        upstream = one.submit()
        return [proc.submit(upstream).result(), proc(5), named(7), named.submit(upstream).result()]

    assert pipeline() == [1, 5, 7, 1]
    runs = latest_flow_run(pipeline).task_runs.order_by("created")
    assert [run.name for run in runs] == ["one-0", "proc-1", "proc-5", "named-of-7", "named-of-1"]


def test_a_task_run_name_template_naming_no_parameter_fails_at_the_call():
    @task(task_run_name="proc-{missing}")
    def proc(x: int) -> int:
        return x

    @task
    def one() -> int:
        return 1

    @flow
    def pipeline() -> None:
        proc.submit(one.submit())

    with pytest.raises(KeyError, match="missing"):
        pipeline()
