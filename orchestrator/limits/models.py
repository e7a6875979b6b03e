"""A concurrency limit per tag, and the slots the task runs running under it hold."""
from __future__ import annotations

from django.db import models

from orchestrator.runs.models import TaskRun


class ConcurrencyLimit(models.Model):
    """At most `concurrency_limit` task runs tagged `tag` may be Running at once.

    The row is also the lock that serializes taking its slots: a run takes a
    slot with the row locked, so two workers never both take the last one.
    """

    tag = models.CharField(max_length=255, unique=True)
    concurrency_limit = models.PositiveIntegerField(help_text="How many task runs with this tag may run at once; 0 runs none.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tag"]

    def __str__(self) -> str:
        return f"{self.tag} ({self.concurrency_limit})"


class ConcurrencySlot(models.Model):
    """One task run holding one slot of a limit, from its Running state until it leaves Running."""

    limit = models.ForeignKey(ConcurrencyLimit, on_delete=models.CASCADE, related_name="slots")
    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="+")
    acquired = models.DateTimeField()

    class Meta:
        ordering = ["acquired"]
        constraints = [models.UniqueConstraint(fields=["limit", "task_run"], name="slot_unique_run_per_limit")]
        indexes = [models.Index(fields=["task_run"], name="slot_task_run")]
