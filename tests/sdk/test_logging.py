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


def test_the_engines_own_lines_are_stored_shown_and_filtered_by_level(capfd, unique_name):
    """"Created task run", "Submitted task run" and "Finished in state" are made without a stack walk
    (RunLoggerAdapter.engine_line): they still carry their run, reach both handlers, and honour the level."""

    @flow(name=unique_name)
    def pipeline():
        return chatty.submit(2).result()

    pipeline()
    messages = logs_of(latest_flow_run(pipeline))
    assert "Created task run 'chatty-0' for task 'chatty'" in messages
    assert "Submitted task run 'chatty-0' for execution." in messages
    from orchestrator.runs.models import Log

    finished = Log.objects.get(flow_run=latest_flow_run(pipeline), task_run__isnull=False, message="Finished in state Completed()")
    assert finished.level == logging.INFO and finished.name == "runway.task_runs"
    err = capfd.readouterr().err
    assert any(LINE.match(line) and "Task run 'chatty-0' - Finished in state Completed()" in line for line in err.splitlines())

    runway = logging.getLogger("runway")
    level = runway.level
    runway.setLevel(logging.WARNING)
    try:
        pipeline()
    finally:
        runway.setLevel(level)
    quiet = logs_of(latest_flow_run(pipeline))
    assert "processing 2" in quiet  # a warning
    assert not any(m.startswith(("Created task run", "Submitted task run", "Finished in state")) for m in quiet)


def test_in_a_celery_worker_a_run_line_reaches_the_worker_log_once_at_its_own_level(unique_name):
    """A Celery worker's sys.stderr is Celery's LoggingProxy: a run's line goes to the proxy's logger as
    one record, `Task run 'name' - message` at the line's level, not as printed text logged again."""
    import sys

    from celery.utils.log import LoggingProxy

    redirected = logging.getLogger("celery.redirected")
    seen: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = seen.append
    redirected.addHandler(capture)
    saved, sys.stderr = sys.stderr, LoggingProxy(redirected, logging.INFO)
    level = redirected.level

    @flow(name=unique_name)
    def pipeline():
        return chatty(5)

    try:
        redirected.setLevel(logging.INFO)
        pipeline()
        lines = [(r.levelno, r.getMessage()) for r in seen]
        seen.clear()
        redirected.setLevel(logging.WARNING)  # `celery worker --loglevel warning`
        pipeline()
        quiet = [(r.levelno, r.getMessage()) for r in seen]
    finally:
        sys.stderr = saved
        redirected.removeHandler(capture)
        redirected.setLevel(level)
    assert (logging.WARNING, "Task run 'chatty-0' - processing 5") in lines, lines
    assert (logging.INFO, "Task run 'chatty-0' - Finished in state Completed()") in lines, lines
    assert not any(LINE.match(message) for _, message in lines), lines  # no second time and level inside
    assert quiet == [(logging.WARNING, "Task run 'chatty-0' - processing 5")], quiet
