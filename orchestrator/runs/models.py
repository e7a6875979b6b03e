"""The run data model.

A run row carries a copy of its current state's type, name and timestamp so the
dashboard's lists filter and sort on one indexed table; the state tables hold
the full history. Only `orchestrator.runs.services` writes state rows.
"""
from __future__ import annotations

import uuid

from django.db import models

from orchestrator.schemas import StateType


class StateTypeChoices(models.TextChoices):
    SCHEDULED = StateType.SCHEDULED.value, "Scheduled"
    PENDING = StateType.PENDING.value, "Pending"
    RUNNING = StateType.RUNNING.value, "Running"
    COMPLETED = StateType.COMPLETED.value, "Completed"
    FAILED = StateType.FAILED.value, "Failed"
    CANCELLED = StateType.CANCELLED.value, "Cancelled"
    CRASHED = StateType.CRASHED.value, "Crashed"
    PAUSED = StateType.PAUSED.value, "Paused"
    CANCELLING = StateType.CANCELLING.value, "Cancelling"


class Flow(models.Model):
    """A decorated flow function, known by its name."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunBase(models.Model):
    """Fields shared by flow runs and task runs: identity, current state, bookkeeping.

    `state` is a plain pointer, not a database constraint: the run row is written
    before its first state, and a deferred constraint check on an unindexed
    pointer made SQLite scan every task run on each state insert.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    tags = models.JSONField(default=list, blank=True)
    # retries, retry_delay (number or list), retry_jitter_factor: read by the retry rules.
    empirical_policy = models.JSONField(default=dict, blank=True)

    state_type = models.CharField(max_length=16, choices=StateTypeChoices.choices, null=True)
    state_name = models.CharField(max_length=64, null=True)
    state_timestamp = models.DateTimeField(null=True)

    run_count = models.PositiveIntegerField(default=0)
    start_time = models.DateTimeField(null=True)
    end_time = models.DateTimeField(null=True)
    total_run_time = models.FloatField(default=0.0, help_text="Seconds spent Running, over all attempts.")
    expected_start_time = models.DateTimeField(null=True)
    next_scheduled_start_time = models.DateTimeField(null=True)

    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True)
    # Set when a Celery worker claims the run (orchestrator/runs/claims.py): who holds it and its
    # last sign of life. A deployment's run released to its queue and not yet claimed has
    # `heartbeat` set to when it was (last) sent, and no worker.
    worker = models.CharField(max_length=255, blank=True, default="", db_default="")
    heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


class FlowRun(RunBase):
    """One execution of a flow, with its parameters and, for subflows, its parent."""

    # Indexed by flowrun_flow_time, which starts with it.
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs", db_index=False)
    state = models.ForeignKey(
        "FlowRunState", on_delete=models.DO_NOTHING, null=True, related_name="+",
        db_index=False, db_constraint=False,
        help_text="The current state: a pointer into the history kept by the services, deleted with the run.",
    )
    parameters = models.JSONField(default=dict, blank=True)
    parent_flow_run = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="subflow_runs"
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # A run of a deployment: which one, the work queue it is released to, and the code it runs.
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="flow_runs", db_index=False)  # fmt: skip
    work_queue_name = models.CharField(max_length=200, blank=True, default="", db_default="")
    code_version = models.CharField(max_length=64, blank=True, default="", db_default="")
    # Per pause of the run (its pause key): the JSON schema of the input it waits for, and the input
    # given when it was resumed: {"<key>": {"schema": {...} | null, "resumed": bool, "value": ...}}.
    run_input = models.JSONField(null=True, blank=True)  # None until the run first pauses

    class Meta:
        indexes = [
            models.Index(fields=["flow", "-expected_start_time"], name="flowrun_flow_time"),
            models.Index(fields=["state_type", "-expected_start_time"], name="flowrun_state_time"),
            models.Index(fields=["-expected_start_time"], name="flowrun_time"),
            models.Index(fields=["state_name"], name="flowrun_state_name"),
            models.Index(fields=["work_queue_name", "state_type", "next_scheduled_start_time"], name="flowrun_queue_due"),
            models.Index(fields=["deployment", "-expected_start_time"], name="flowrun_deployment_time"),
            models.Index(fields=["state_timestamp"], name="flowrun_state_changed"),  # the live UI's "what changed"
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "idempotency_key"], name="flowrun_unique_idempotency_key"
            ),
        ]


class TaskRun(RunBase):
    """One execution of a task; its identity in a flow run is (task_key, dynamic_key)."""

    # Indexed by the unique (flow_run, task_key, dynamic_key) constraint, which starts with it.
    flow_run = models.ForeignKey(
        FlowRun, on_delete=models.CASCADE, null=True, blank=True, related_name="task_runs", db_index=False
    )
    state = models.ForeignKey(
        "TaskRunState", on_delete=models.DO_NOTHING, null=True, related_name="+",
        db_index=False, db_constraint=False,
        help_text="The current state: a pointer into the history kept by the services, deleted with the run.",
    )
    task_key = models.CharField(max_length=512)
    dynamic_key = models.CharField(max_length=255)
    cache_key = models.CharField(max_length=255, null=True, blank=True)
    cache_expiration = models.DateTimeField(null=True, blank=True)
    # Upstream runs that fed each parameter: {"x": [{"input_type": "task_run", "id": ...}]}.
    task_inputs = models.JSONField(default=dict, blank=True)
    flow_run_run_count = models.PositiveIntegerField(default=0)
    # The message that started it (set with the claim), sent again if the run must be retried.
    dispatch = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state_type", "-expected_start_time"], name="taskrun_state_time"),
            models.Index(fields=["-expected_start_time"], name="taskrun_time"),
            # a flow's runs that changed state lately: how a flow waits on the runs it sent to workers
            models.Index(fields=["flow_run", "state_timestamp"], name="taskrun_flowrun_state_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["flow_run", "task_key", "dynamic_key"], name="taskrun_unique_key_in_flow_run"
            ),
        ]


class StateBase(models.Model):
    """One entry of a run's state history."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=16, choices=StateTypeChoices.choices)
    name = models.CharField(max_length=64)
    message = models.TextField(blank=True, default="")
    timestamp = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="Reference to the stored result.")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class FlowRunState(StateBase):
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="states", db_index=False)

    class Meta:
        indexes = [models.Index(fields=["flow_run", "timestamp"], name="flowrunstate_run_time")]


class TaskRunState(StateBase):
    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="states", db_index=False)

    class Meta:
        indexes = [models.Index(fields=["task_run", "timestamp"], name="taskrunstate_run_time")]


class TaskCacheEntry(models.Model):
    """A cache key's Completed state: CacheRetrieval serves it until it expires."""

    cache_key = models.CharField(max_length=255)
    state = models.ForeignKey(TaskRunState, on_delete=models.CASCADE, related_name="+")
    expiration = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["cache_key", "-created"], name="taskcache_key_created")]


class Log(models.Model):
    """A log line of a flow run or task run."""

    id = models.BigAutoField(primary_key=True)
    # Both indexed by the composite indexes below, which start with them.
    flow_run = models.ForeignKey(
        FlowRun, on_delete=models.CASCADE, null=True, blank=True, related_name="logs", db_index=False
    )
    task_run = models.ForeignKey(
        TaskRun, on_delete=models.CASCADE, null=True, blank=True, related_name="logs", db_index=False
    )
    level = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=255, help_text="The logger's name.")
    message = models.TextField()
    timestamp = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["flow_run", "timestamp", "id"], name="log_flowrun_time"),
            models.Index(fields=["task_run", "timestamp", "id"], name="log_taskrun_time"),
        ]


class LogBatch(models.Model):
    """The key of a batch of log lines already stored: a client retrying a batch whose answer it lost
    sends the same key, and the lines are not stored twice."""

    key = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["created"], name="logbatch_created")]  # the hourly prune
