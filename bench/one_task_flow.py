"""The smallest real use: one flow calling one task. Run it as `python bench/one_task_flow.py`.

bench/cold_start.py times this script in fresh processes.
"""
from sdk import flow, task


@task
def say_hello(name: str) -> str:
    return f"hello {name}"


@flow
def hello_flow(name: str = "world") -> str:
    return say_hello(name)


if __name__ == "__main__":
    assert hello_flow() == "hello world"
