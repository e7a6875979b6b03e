"""Run logs: the console format, the Log table, log_prints, and the logger outside runs."""
from __future__ import annotations

import logging
import re

import pytest

from sdk import flow, get_run_logger, task
from sdk.exceptions import MissingContextError
from sdk.logging import disable_run_logger
from tests.sdk.conftest import latest_flow_run, logs_of

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| (INFO |WARNING|ERROR|DEBUG|CRITICAL) *\| (Flow run|Task run) '[^']+' - ")


@task
def chatty(x: int) -> int:
    get_run_logger().warning("processing %s", x)
    return x


def test_console_lines_have_prefects_format_with_friendly_run_names(capfd, unique_name):
    @flow(name=unique_name)
    def pipeline():
        get_run_logger().info("hello from the flow")
        chatty(1)

    pipeline()
    err = capfd.readouterr().err
    flow_line = next(line for line in err.splitlines() if "hello from the flow" in line)
    task_line = next(line for line in err.splitlines() if "processing 1" in line)
    assert LINE.match(flow_line) and LINE.match(task_line), err
    assert re.search(r"Flow run '[a-z]+-[a-z]+' - hello", flow_line)
    assert "Task run 'chatty-0' - processing 1" in task_line
    assert "| WARNING |" in task_line


def test_every_log_line_is_stored_with_its_run_level_and_order(unique_name):
    @flow(name=unique_name)
    def pipeline():
        get_run_logger().info("first")
        chatty(7)
        get_run_logger().error("last")

    pipeline()
    run = latest_flow_run(pipeline)
    messages = logs_of(run)
    assert messages.index("first") < messages.index("processing 7") < messages.index("last")
    assert "Finished in state Completed()" in messages
    from orchestrator.runs.models import Log

    task_line = Log.objects.get(flow_run=run, message="processing 7")
    assert task_line.level == logging.WARNING and task_line.task_run is not None
    assert task_line.name == "runway.task_runs"


def test_log_prints_turns_print_into_run_log_lines(unique_name):
    @task
    def shout():
        print("from the task")

    @flow(name=unique_name, log_prints=True)
    def pipeline():
        print("from the flow")
        shout()

    pipeline()
    messages = logs_of(latest_flow_run(pipeline))
    assert "from the flow" in messages and "from the task" in messages


def test_print_without_log_prints_is_an_ordinary_print(capsys, unique_name):
    @flow(name=unique_name)
    def pipeline():
        print("plain output")

    pipeline()
    assert "plain output" in capsys.readouterr().out
    assert "plain output" not in logs_of(latest_flow_run(pipeline))


def test_logs_are_stored_even_when_the_flow_fails(unique_name):
    @flow(name=unique_name)
    def pipeline():
        for i in range(200):
            get_run_logger().info(f"line {i}")
        raise RuntimeError("late failure")

    with pytest.raises(RuntimeError):
        pipeline()
    messages = logs_of(latest_flow_run(pipeline))
    assert [m for m in messages if m.startswith("line ")] == [f"line {i}" for i in range(200)]


def test_get_run_logger_outside_a_run_raises_missing_context_error():
    with pytest.raises(MissingContextError):
        get_run_logger()


def test_disable_run_logger_lets_task_fn_be_called_in_a_unit_test():
    with disable_run_logger():
        assert chatty.fn(3) == 3
