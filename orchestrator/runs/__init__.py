"""Flows, their runs, task runs, state histories, logs and the task cache."""
