"""Facts about the current run, as module attributes: `from sdk.runtime import flow_run; flow_run.name`,
or `from sdk import runtime; runtime.task_run.parameters`, as with Prefect's `prefect.runtime`."""
from sdk.runtime import flow_run, task_run

__all__ = ["flow_run", "task_run"]
