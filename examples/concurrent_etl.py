"""Submitted and mapped tasks run concurrently; futures feed downstream tasks; a cached step."""
import datetime
import time

from sdk import flow, task, unmapped
from sdk.tasks import task_input_hash


@task(cache_key_fn=task_input_hash, cache_expiration=datetime.timedelta(minutes=10))
def extract(source: str) -> list[int]:
    time.sleep(0.2)  # a slow query, cached for ten minutes
    return list(range(len(source)))


@task
def transform(row: int, factor: int) -> int:
    return row * factor


@task
def load(rows: list[int]) -> int:
    return sum(rows)


@flow
def concurrent_etl(source: str = "warehouse", factor: int = 3) -> int:
    rows = extract(source)
    transformed = transform.map(rows, unmapped(factor))
    return load.submit(transformed).result()


if __name__ == "__main__":
    print(concurrent_etl())
    print(concurrent_etl())  # the second run's extract is Cached
