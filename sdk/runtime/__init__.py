"""Facts about the current run, as module attributes: `from sdk.runtime import flow_run; flow_run.name`."""
