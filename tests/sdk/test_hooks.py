"""State-change hooks: each called once with (flow or task, run, state), on the final state only;
a failing hook is logged and changes nothing."""
from __future__ import annotations

import pytest

from sdk import flow, task
from tests.sdk.conftest import latest_flow_run, logs_of


def test_task_hooks_run_once_on_the_final_state_not_on_each_retry(unique_name):
    seen: list[tuple[str, str, str]] = []

    def remember(task_, run, state) -> None:
        seen.append((task_.name, run.name, state.name))

    @task(retries=2, on_failure=[remember], on_completion=[remember])
    def flaky() -> None:
        raise ValueError("always")

    @task(on_completion=[remember], on_failure=[remember])
    def fine() -> int:
        return 1

    @flow(name=unique_name)
    def pipeline() -> None:
        fine()
        flaky(return_state=True)

    pipeline()
    assert seen == [("fine", "fine-0", "Completed"), ("flaky", "flaky-0", "Failed")]


def test_a_failing_task_hook_is_logged_and_the_run_keeps_its_state(unique_name):
    def explode(task_, run, state) -> None:
        raise RuntimeError("hook bug")

    @task(on_completion=[explode])
    def value() -> int:
        return 7

    @flow(name=unique_name)
    def pipeline() -> int:
        return value()

    assert pipeline() == 7
    run = latest_flow_run(unique_name)
    assert run.state_name == "Completed" and run.task_runs.get().state_name == "Completed"
    assert any("hook 'explode'" in line for line in logs_of(run))


def test_flow_hooks_run_once_after_the_flow_s_retries(unique_name):
    seen: list[str] = []

    @flow(name=unique_name, retries=1, on_failure=[lambda f, r, s: seen.append(f"failure {r.run_count}")],
          on_completion=[lambda f, r, s: seen.append("completion")])  # fmt: skip
    def doomed() -> None:
        raise KeyError("no")

    with pytest.raises(KeyError):
        doomed()
    assert seen == ["failure 2"]


def test_submitted_task_runs_call_their_hooks_once_too(unique_name):
    seen: list[str] = []

    @task(on_completion=[lambda t, r, s: seen.append(r.name)])
    def double(x: int) -> int:
        return 2 * x

    @flow(name=unique_name)
    def fan_out() -> list[int]:
        return [f.result() for f in double.map(range(4))]

    assert fan_out() == [0, 2, 4, 6]
    assert sorted(seen) == ["double-0", "double-1", "double-2", "double-3"]
