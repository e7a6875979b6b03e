"""A deployment names a flow's stored code, its default parameters and tags, and the work queue
whose agents run it; a work queue is a Celery queue with filters, a pause switch and a limit."""
from __future__ import annotations

import uuid

from django.db import models

from orchestrator.runs.models import Flow

DEFAULT_QUEUE = "default"


class WorkQueue(models.Model):
    """The runs an agent (`celery worker -Q <name>`) serves.

    A run belongs to the queue its deployment names; a queue with filters also
    takes the runs of other deployments whose tags include all of `filter_tags`
    and, if `filter_deployments` is not empty, that are among them.
    """

    name = models.CharField(max_length=255, unique=True, help_text="Also the Celery queue its runs are sent to.")
    description = models.TextField(blank=True, default="")
    filter_tags = models.JSONField(default=list, blank=True)
    filter_deployments = models.ManyToManyField("Deployment", blank=True, related_name="+")
    is_paused = models.BooleanField(default=False)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="At most this many of its flow runs running; empty: no limit.")  # fmt: skip
    priority = models.PositiveIntegerField(default=1, help_text="An agent serving several queues releases from 1 first, then 2...")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name


class Deployment(models.Model):
    """One way to run a flow: its code as it was deployed, defaults, tags, queue, schedules."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=255)
    entrypoint = models.CharField(max_length=1024, help_text="Inside the stored code: `file.py:function` or `package.module:function`.")
    source = models.CharField(max_length=1024, blank=True, default="", help_text="Where the code was deployed from.")
    code_path = models.CharField(max_length=1024, help_text="The directory holding the stored copy of the code.")
    code_version = models.CharField(max_length=64, help_text="SHA-256 of the stored files: the code a run of it runs.")
    parameters = models.JSONField(default=dict, blank=True)
    parameter_schema = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True, default="")
    version = models.CharField(max_length=255, blank=True, default="")
    work_queue = models.ForeignKey(WorkQueue, on_delete=models.PROTECT, related_name="deployments")
    is_paused = models.BooleanField(default=False)
    # retries and retry_delay of its runs (the flow's own, as deployed): a run whose agent
    # died, or that failed, starts again while retries remain.
    empirical_policy = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["flow__name", "name"]
        constraints = [models.UniqueConstraint(fields=["flow", "name"], name="deployment_unique_name_per_flow")]

    def __str__(self) -> str:
        return f"{self.flow.name}/{self.name}"


class DeploymentSchedule(models.Model):
    """When a deployment runs by itself: a cron in a time zone, an interval from an anchor, or an RRule
    (checked and evaluated in orchestrator/deployments/schedules.py)."""

    KINDS = [("cron", "Cron"), ("interval", "Interval"), ("rrule", "RRule")]

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="schedules")
    kind = models.CharField(max_length=16, choices=KINDS)
    cron = models.CharField(max_length=255, blank=True, default="")
    timezone = models.CharField(max_length=64, default="UTC")
    interval_seconds = models.FloatField(null=True, blank=True)
    anchor_date = models.DateTimeField(null=True, blank=True)
    rrule = models.TextField(blank=True, default="")
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        from orchestrator.deployments.schedules import describe

        return describe(self.as_schedule())

    def as_schedule(self):
        from orchestrator.deployments.schedules import Schedule

        return Schedule(self.kind, cron=self.cron, timezone=self.timezone, interval_seconds=self.interval_seconds,
                        anchor_date=self.anchor_date, rrule=self.rrule)  # fmt: skip
