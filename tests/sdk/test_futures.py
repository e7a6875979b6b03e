"""Concurrency inside a flow: submit, map, futures as arguments, wait_for, allow_failure, task runners."""
from __future__ import annotations

import threading

import pytest

from sdk import allow_failure, flow, quote, task, unmapped
from sdk.exceptions import MappingLengthMismatch, UpstreamTaskError
from sdk.futures import PrefectFuture, RunwayFuture
from sdk.task_runners import ConcurrentTaskRunner, SequentialTaskRunner
from tests.sdk.conftest import latest_flow_run


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def fail(message: str = "upstream broke"):
    raise RuntimeError(message)


def test_submit_returns_a_future_with_result_wait_and_state():
    @flow
    def pipeline():
        future = add.submit(1, 2)
        assert isinstance(future, PrefectFuture) and PrefectFuture is RunwayFuture
        state = future.wait()
        return future.result(), state.is_completed(), future.state.name

    assert pipeline() == (3, True, "Completed")


def test_map_returns_futures_in_order_with_unmapped_and_static_arguments(unique_name):
    @flow(name=unique_name)
    def pipeline():
        return [f.result() for f in add.map([1, 2, 3], unmapped(10))], [f.result() for f in add.map([1, 2], 5)]

    assert pipeline() == ([11, 12, 13], [6, 7])
    names = sorted(t.name for t in latest_flow_run(pipeline).task_runs.all())
    assert names == ["add-0", "add-1", "add-2", "add-3", "add-4"]


def test_map_creates_its_runs_pending_in_chunks_and_logs_each_creation_and_submission(unique_name, monkeypatch):
    from sdk.engine import calls
    from tests.sdk.conftest import logs_of

    monkeypatch.setattr(calls, "FIRST_SUBMIT_CHUNK", 1)  # five runs: chunks of 1, 2, 2
    monkeypatch.setattr(calls, "SUBMIT_CHUNK", 2)
    seen_pending = []

    @task
    def look(i: int) -> int:
        from orchestrator.runs.models import TaskRun
        from sdk.context import TaskRunContext

        flow_run_id = TaskRunContext.get().flow_run_context.flow_run.id
        seen_pending.append(TaskRun.objects.filter(flow_run_id=flow_run_id).count())
        return i

    @flow(name=unique_name, task_runner=SequentialTaskRunner())
    def pipeline():
        return [f.result() for f in look.map(range(5))]

    assert pipeline() == [0, 1, 2, 3, 4]
    assert seen_pending == [1, 3, 3, 5, 5]  # a chunk is stored before its first run starts
    run = latest_flow_run(pipeline)
    assert all([s.type for s in t.states.order_by("timestamp")] == ["PENDING", "RUNNING", "COMPLETED"]
               for t in run.task_runs.all())  # fmt: skip
    lines = logs_of(run)
    for i in range(5):
        created = lines.index(f"Created task run 'look-{i}' for task 'look'")
        assert lines[created + 1] == f"Submitted task run 'look-{i}' for execution."
    assert lines.count("Finished in state Completed()") == 6  # five task runs and the flow run


def test_a_large_map_starts_its_first_runs_before_the_rest_are_created(unique_name):
    from sdk.engine import calls

    seen_pending = []

    @task
    def look(i: int) -> int:
        from orchestrator.runs.models import TaskRun
        from sdk.context import TaskRunContext

        seen_pending.append(TaskRun.objects.filter(flow_run_id=TaskRunContext.get().flow_run_context.flow_run.id).count())
        return i

    @flow(name=unique_name, task_runner=SequentialTaskRunner())
    def pipeline():
        return sum(f.result() for f in look.map(range(200)))

    assert pipeline() == sum(range(200))
    first = calls.FIRST_SUBMIT_CHUNK
    assert first < 200 and seen_pending[0] == first  # not all 200 made (and logged) before the first ran
    assert seen_pending[first] == 3 * first and seen_pending[-1] == 200  # then chunks twice as large


def test_a_quoted_argument_reaches_the_task_unwrapped_and_unlooked_into(unique_name):
    @task
    def describe(x):
        return [type(item).__name__ for item in x] if isinstance(x, list) else type(x).__name__

    @flow(name=unique_name)
    def pipeline():
        future = add.submit(1, 2)
        return (describe(quote([1, 2])), describe.submit([quote(3), 4]).result(),
                describe.submit(quote([future])).result(), future.result())  # fmt: skip

    # As in Prefect 2: the task gets the value, and futures inside a quote are neither resolved nor waited for.
    assert pipeline() == (["int", "int"], ["int", "int"], ["RunwayFuture"], 3)
    runs = {t.name: t for t in latest_flow_run(pipeline).task_runs.all()}
    assert runs["describe-2"].task_inputs == {}  # no dependency recorded through the quote


def test_map_maps_over_the_contents_of_allow_failure_and_quote_and_refuses_nothing_to_map(unique_name):
    from sdk.exceptions import MappingMissingIterable

    @task
    def describe(x):
        return type(x).__name__ if not isinstance(x, int) else x

    @flow(name=unique_name)
    def pipeline():
        return ([f.result() for f in describe.map(allow_failure([1, 2]))],
                [f.result() for f in describe.map(quote([3, 4]))])  # fmt: skip

    assert pipeline() == ([1, 2], [3, 4])  # each item wrapped again, unwrapped by the run

    @flow
    def nothing_to_map():
        return describe.map(5)

    with pytest.raises(MappingMissingIterable, match="at least one iterable argument.*x=5"):
        nothing_to_map()


def test_map_refuses_iterables_of_different_lengths():
    @flow
    def pipeline():
        add.map([1, 2], [1, 2, 3])

    with pytest.raises(MappingLengthMismatch, match="x=2, y=3"):
        pipeline()


def test_futures_passed_as_arguments_resolve_to_results_and_record_the_dependency(unique_name):
    @flow(name=unique_name)
    def pipeline():
        a = add.submit(1, 1)
        b = add.submit(a, 10)
        return add(b, [a, 100][0])

    assert pipeline() == 14
    runs = {t.name: t for t in latest_flow_run(pipeline).task_runs.all()}
    assert runs["add-1"].task_inputs == {"x": [{"input_type": "task_run", "id": str(runs["add-0"].id)}]}
    assert set(runs["add-2"].task_inputs) == {"x", "y"}


def test_an_upstream_failure_makes_the_downstream_task_not_ready_and_fails_the_flow(unique_name):
    ran = []

    @task
    def downstream(x):
        ran.append(x)

    @flow(name=unique_name)
    def pipeline():
        downstream.submit(fail.submit())

    state = pipeline(return_state=True)
    assert state.is_failed()
    assert ran == []
    runs = {t.name: t for t in latest_flow_run(pipeline).task_runs.all()}
    assert runs["downstream-0"].state_name == "NotReady"
    assert "did not reach a 'COMPLETED' state" in runs["downstream-0"].state.message


def test_result_of_a_not_ready_future_raises_a_clear_error():
    @task
    def downstream(x):
        return x

    @flow
    def pipeline():
        return downstream.submit(fail.submit()).result()

    with pytest.raises(Exception) as caught:
        pipeline()
    assert isinstance(caught.value, (UpstreamTaskError, Exception))


def test_allow_failure_runs_downstream_with_the_exception():
    @task
    def inspect_value(value):
        return f"{type(value).__name__}: {value}"

    @flow
    def pipeline():
        return inspect_value.submit(allow_failure(fail.submit("disk full"))).result()

    assert pipeline() == "RuntimeError: disk full"


def test_allow_failure_excuses_a_failed_upstream_only(unique_name):
    ran = []

    @task
    def downstream(value):
        ran.append(value)

    @flow(name=unique_name)
    def pipeline():
        not_ready = add.submit(fail.submit(), 1)  # ends Pending, named NotReady
        allowed = downstream.submit(allow_failure(not_ready))
        waiting = downstream.submit(2, wait_for=[allow_failure(not_ready)])
        return allowed.wait().name, waiting.wait().name

    # As in Prefect 2: a not-ready (or crashed, cancelled) upstream still stops the run; before,
    # the run started and crashed reading the upstream's missing result.
    assert pipeline() == ("NotReady", "NotReady")
    runs = {t.name: t for t in latest_flow_run(pipeline).task_runs.all()}
    assert [runs[f"downstream-{i}"].state_name for i in (0, 1)] == ["NotReady", "NotReady"]
    assert ran == []


def test_wait_for_does_not_read_the_results_it_waits_for(unique_name):
    from sdk import states

    @flow(name=unique_name)
    def pipeline():
        first = add.submit(0, 1)
        state = first.wait()
        state.data, state.result_ref = states._NO_DATA, None  # its value unreadable: neither kept nor stored
        return add.submit(1, 2, wait_for=[allow_failure(first)]).result()

    assert pipeline() == 3  # before, the run crashed reading the result it only had to wait for


def test_wait_for_orders_tasks_without_passing_data():
    order = []

    @task
    def step(name: str):
        order.append(name)

    @flow(task_runner=ConcurrentTaskRunner(max_workers=4))
    def pipeline():
        first = step.submit("first")
        step.submit("second", wait_for=[first]).wait()

    pipeline()
    assert order == ["first", "second"]


def test_wait_for_a_failed_task_skips_the_waiting_one():
    ran = []

    @task
    def after():
        ran.append(1)

    @flow
    def pipeline():
        assert after.submit(wait_for=[fail.submit()]).wait().name == "NotReady"

    state = pipeline(return_state=True)
    assert state.is_failed() and state.message == "1/1 states failed."
    assert ran == []


def test_the_default_task_runner_runs_submitted_tasks_concurrently():
    barrier = threading.Barrier(3, timeout=5)

    @task
    def meet(i: int) -> int:
        barrier.wait()  # only returns once three tasks run at the same time
        return i

    @flow
    def pipeline():
        return [f.result() for f in meet.map(range(3))]

    assert pipeline() == [0, 1, 2]


def test_the_sequential_task_runner_runs_one_task_at_a_time_in_order():
    active, peak, order = [0], [0], []
    lock = threading.Lock()

    @task
    def work(i: int):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        order.append(i)
        with lock:
            active[0] -= 1

    @flow(task_runner=SequentialTaskRunner())
    def pipeline():
        for f in work.map(range(5)):
            f.wait()

    pipeline()
    assert order == [0, 1, 2, 3, 4] and peak[0] == 1


def test_a_flow_waits_for_submitted_tasks_before_it_finishes(unique_name):
    done = []

    @task
    def slow():
        import time

        time.sleep(0.2)
        done.append(1)

    @flow(name=unique_name)
    def fire_and_forget():
        slow.submit()

    fire_and_forget()
    assert done == [1]
    assert latest_flow_run(fire_and_forget).task_runs.get().state_type == "COMPLETED"


def test_an_unobserved_failed_submission_fails_a_flow_returning_none():
    @flow
    def careless():
        fail.submit()

    state = careless(return_state=True)
    assert state.is_failed() and state.message == "1/1 states failed."


def test_awaiting_submit_in_an_async_flow_gives_the_future():
    import asyncio

    @task
    async def double(x: int) -> int:
        return 2 * x

    @flow
    async def pipeline():
        future = await double.submit(4)
        return await future.result()

    assert asyncio.run(pipeline()) == 8


def test_the_futures_of_a_map_passed_whole_to_a_task_resolve_to_their_results():
    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @flow
    def pipeline():
        return total.submit(add.map([1, 2], unmapped(1))).result()

    assert pipeline() == 5


def test_a_sync_task_s_future_answers_directly_in_an_async_flow_as_in_prefect_2():
    """Only an async task's run is awaited in an async flow; code written for Prefect 2 calls
    `.result()` on a sync task's future without await."""
    import asyncio

    @task
    def triple(x: int) -> int:
        return 3 * x

    @task
    async def halve(x: int) -> float:
        return x / 2

    @flow
    async def pipeline():
        future = triple.submit(2)
        states = triple.map([1, 2], return_state=True)
        awaited = await halve.submit(future.result())
        return future.result(), future.wait().name, [s.result() for s in states], await awaited.result()

    assert asyncio.run(pipeline()) == (6, "Completed", [3, 6], 3.0)


def test_state_result_with_fetch_and_get_state_are_awaited_in_async_flows_as_in_prefect_2():
    import asyncio

    @task
    def triple(x: int) -> int:
        return 3 * x

    @flow
    async def pipeline():
        future = triple.submit(2)
        state = future.wait()
        now = await future.get_state()
        return await state.result(fetch=True), state.result(), now.name

    @flow
    def sync_pipeline():
        future = triple.submit(3)
        future.wait()
        return future.get_state().name, future.wait().result(fetch=True)

    assert asyncio.run(pipeline()) == (6, 6, "Completed")
    assert sync_pipeline() == ("Completed", 9)


def test_futures_inside_dataclasses_and_pydantic_models_are_waited_for_and_resolved():
    """As in Prefect 2's visit_collection; an object with nothing to resolve reaches the task as
    the very same object, and one that refers to itself does not send the resolution round forever."""
    import dataclasses

    import pydantic

    @dataclasses.dataclass(frozen=True)
    class Source:
        path: object
        options: dict

    class Settings(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        source: object
        retries: int = 2

    @dataclasses.dataclass
    class Node:
        name: str
        parent: object = None

    @task
    def locate() -> str:
        return "/data/in.csv"

    @task
    def describe(settings: Settings, node: Node) -> tuple:
        return settings.source.path, settings.source.options, settings.retries, node.parent is node, node.name

    root = Node("root")
    root.parent = root

    @flow
    def pipeline() -> tuple:
        path = locate.submit()
        settings = Settings(source=Source(path=path, options={"sep": [path]}))
        future = describe.submit(settings, root)
        return future.result(), future.task_run_id

    (path, options, retries, loops, name), run_id = pipeline()
    assert (path, options, retries, loops, name) == ("/data/in.csv", {"sep": ["/data/in.csv"]}, 2, True, "root")
    from orchestrator.runs.models import TaskRun

    inputs = TaskRun.objects.get(pk=run_id).task_inputs
    assert [i["input_type"] for i in inputs["settings"]] == ["task_run"] and "node" not in inputs


def test_an_object_without_futures_is_passed_to_the_task_as_is():
    import dataclasses

    @dataclasses.dataclass
    class Config:
        items: list

    config = Config(items=[1, 2])

    @task
    def same(value: Config) -> bool:
        return value is config

    @flow
    def pipeline() -> bool:
        return same.submit(config).result()

    assert pipeline() is True


def test_runs_waiting_for_a_slow_run_hold_no_thread_of_the_pool():
    """Two threads: one runs the slow run, the waiting runs hold none, so the run submitted after
    them starts at once (and here is what lets the slow run finish). Before, the waiting runs
    held the second thread and the slow run waited out its 5 s in vain."""
    import threading

    gate = threading.Event()

    @task
    def slow(gate: threading.Event) -> bool:
        return gate.wait(5)

    @task
    def after(i: int) -> int:
        return i

    @task
    def opens(gate: threading.Event) -> str:
        gate.set()
        return "opened"

    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def pipeline() -> list:
        first = slow.submit(gate)
        waiting = [after.submit(i, wait_for=[first]) for i in range(4)]
        independent = opens.submit(gate)
        return [future.result() for future in [first, *waiting, independent]]

    assert pipeline() == [True, 0, 1, 2, 3, "opened"]
