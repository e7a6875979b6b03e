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
