"""Sync and async bodies, nested submissions, *args, and mapping over futures."""
from __future__ import annotations

import asyncio

from sdk import flow, task


@task
def plus_one(x: int) -> int:
    return x + 1


@task
async def async_double(x: int) -> int:
    return 2 * x


def test_a_sync_subflow_of_an_async_flow_gets_values_not_coroutines():
    @flow
    def child() -> tuple[int, int]:
        return plus_one.submit(1).result(), async_double(5)

    @flow
    async def parent():
        return child()

    assert asyncio.run(parent()) == (2, 10)


def test_a_task_that_submits_a_task_and_waits_for_it_does_not_deadlock_the_pool():
    from sdk.task_runners import ConcurrentTaskRunner

    @task
    def middle(x: int) -> int:
        return plus_one.submit(x).result()

    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def pipeline() -> list[int]:
        return [f.result() for f in middle.map(range(6))]

    assert pipeline() == [1, 2, 3, 4, 5, 6]


def test_extra_positional_arguments_reach_star_args():
    @task
    def gather(first, second=None, *rest, **options):
        return first, second, rest, options

    @flow
    def pipeline():
        return gather("a", "b", 1, 2, flag=True), gather("a")

    with_rest, alone = pipeline()
    assert with_rest == ("a", "b", (1, 2), {"flag": True})
    assert alone == ("a", None, (), {})


def test_map_over_a_future_maps_over_its_result():
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow
    def pipeline():
        return [f.result() for f in plus_one.map(numbers.submit())]

    assert pipeline() == [2, 3, 4]


def test_map_can_be_awaited_in_an_async_flow():
    @flow
    async def pipeline():
        futures = await async_double.map([1, 2])
        states = await async_double.map([3], return_state=True)
        return [await f.result() for f in futures], [s.result() for s in states]

    assert asyncio.run(pipeline()) == ([2, 4], [6])


def test_a_retried_flow_reruns_a_completed_task_whose_result_was_not_persisted():
    calls = []

    @task(persist_result=False)
    def ephemeral() -> int:
        calls.append(1)
        return 7

    attempts = []

    @flow(retries=1)
    def pipeline() -> int:
        value = ephemeral()
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails after the task")
        return value

    assert pipeline() == 7
    assert len(calls) == 2
