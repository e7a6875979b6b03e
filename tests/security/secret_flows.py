"""Flows that try to leak a secret every way a run reports back: log lines, print(), a failure's
message and traceback, a result, a subflow's parameter. Importable, so Celery workers find the tasks."""
from __future__ import annotations

import time
from pathlib import Path

from sdk import flow, get_run_logger, task
from sdk.secrets import Secret, get_secret
from sdk.task_runners import CeleryTaskRunner


@task
def logs_it(name: str) -> int:
    value = Secret.load(name).get()
    logger = get_run_logger()
    logger.info("the token is %s", value)
    logger.warning(f"as repr {value!r}, in a dict {({'token': value})}, the Secret itself {Secret.load(name)}")
    try:
        raise ConnectionError(f"while sending {value}")
    except ConnectionError:
        logger.exception("a logged exception")
    return len(value)


@task(log_prints=True)
def prints_it(name: str) -> None:
    print("printing the token:", get_secret(name))


@task
def fails_with_it(name: str) -> None:
    value = get_secret(name)
    raise PermissionError(f"the server refused token {value}")


@task
def returns_it(name: str) -> str:
    return get_secret(name)


@flow(flow_run_name="called-with-{token}")
def gets_it_as_a_parameter(token: str) -> int:
    return len(token)


def wait_for(gate: str, timeout: float = 120.0) -> None:
    """Wait until the test has its websocket open (it creates the file `gate`)."""
    deadline = time.monotonic() + timeout
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} never appeared")
        time.sleep(0.05)


@flow(task_runner=CeleryTaskRunner(), log_prints=True, flow_run_name="{run_name}")
def leaky_pipeline(name: str, gate: str, run_name: str) -> int:
    """Runs its tasks on Celery workers; fails at the end, with the secret in the failure's message."""
    wait_for(gate)
    value = get_secret(name)
    get_run_logger().info(f"the flow has the token too: {value}")
    print("the flow prints", value)
    gets_it_as_a_parameter(value)
    length, printed = logs_it.submit(name), prints_it.submit(name)
    returned, failed = returns_it.submit(name), fails_with_it.submit(name)
    if returned.result() != value:  # the result came back through the file store, whole
        raise RuntimeError("the returned secret changed on its way")
    printed.result()
    failed.result()  # raises the task's PermissionError here: the flow run fails with it
    return length.result()


class SecretCrash(BaseException):
    """Not an Exception: it crashes the run instead of failing it."""


@task
def crashes_with_it(name: str) -> None:
    raise SecretCrash(f"crashed holding {get_secret(name)}")


@flow
def crashing_flow(name: str) -> None:
    crashes_with_it(name)


@task
def leaks_in_process(name: str) -> str:
    value = Secret.load(name).get()
    logger = get_run_logger()
    logger.info("in process: %s", value)
    logger.info("as repr: %r", value)
    print("printed in process:", value)
    return value


@task
def fails_in_process(name: str) -> None:
    raise ValueError(f"rejected {get_secret(name)!r}")


@flow(log_prints=True)
def in_process_pipeline(name: str) -> str:
    value = leaks_in_process(name)
    gets_it_as_a_parameter(value)
    fails_in_process.submit(name).wait()
    return value
