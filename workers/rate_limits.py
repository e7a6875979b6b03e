"""Celery's own rate limits for `@task(rate_limit="10/s")`: one Celery task name per rate.

Celery limits rates per task name, in each worker's consumer: a token bucket
holds a message back until its turn, without taking a pool slot. Runway sends
every task run as `runway.run_task_run`; a run of a rate-limited task is sent
as `runway.run_task_run@10/s` instead. Workers cannot know those names before
the messages arrive, so the app's task registry makes the task the first time
its name is looked up (in the consumer and in pool processes alike), and the
consumer gives it a strategy and a token bucket the first time a message
names it. As with any Celery rate limit, it applies to each worker on its own.
"""
from __future__ import annotations

from typing import Any

from celery.app.registry import TaskRegistry
from celery.worker.consumer import Consumer as CeleryConsumer

from orchestrator.schemas.rates import parse_rate

TASK_NAME = "runway.run_task_run"
PREFIX = TASK_NAME + "@"


def task_name(rate_limit: str | None) -> str:
    """The Celery task name that runs a task run at `rate_limit` (per worker), or with no limit."""
    return PREFIX + parse_rate(rate_limit) if rate_limit else TASK_NAME


def rate_of(name: str) -> str | None:
    """The rate a task name stands for; None if it is not a rate-limited runway task."""
    if not name.startswith(PREFIX):
        return None
    try:
        return parse_rate(name[len(PREFIX) :])
    except ValueError:
        return None


class RateLimitedRegistry(TaskRegistry):
    """A task registry that makes `runway.run_task_run@<rate>` when it is first asked for."""

    def __missing__(self, name: str) -> Any:
        rate = rate_of(name)
        if rate is None or PREFIX + rate != name:
            return super().__missing__(name)  # raises NotRegistered
        from workers.tasks import rate_limited_task

        return rate_limited_task(rate)


class _Strategies(dict):
    """The consumer's strategy per task name, made on first use for rate-limited names."""

    def __init__(self, consumer: Consumer) -> None:
        super().__init__()
        self.consumer = consumer

    def __missing__(self, name: str) -> Any:
        if rate_of(name) is None:
            raise KeyError(name)  # the consumer rejects the message as an unknown task
        consumer = self.consumer
        task = consumer.app.tasks[name]
        consumer.task_buckets[name] = consumer.bucket_for_task(task)
        self[name] = strategy = task.start_strategy(consumer.app, consumer)
        return strategy


class Consumer(CeleryConsumer):
    """Celery's consumer, with strategies (and token buckets) for rate-limited runs made on demand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strategies = _Strategies(self)
