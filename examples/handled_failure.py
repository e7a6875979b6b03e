"""A failing task is recorded Failed with its traceback; the flow handles it and completes."""
from sdk import flow, get_run_logger, task


@task(retries=1, retry_delay_seconds=0.1)
def flaky_source() -> int:
    raise RuntimeError("upstream API returned 503")


@task
def fallback() -> int:
    return 0


@flow
def resilient() -> int:
    try:
        return flaky_source()
    except RuntimeError as exc:
        get_run_logger().warning("using the fallback: %s", exc)
        return fallback()


if __name__ == "__main__":
    print(resilient())
