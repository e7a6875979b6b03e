"""A notification rule, and one delivery of its message per flow run state it fired on."""
from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from orchestrator.runs.models import FlowRun


class Channel(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (JSON)"
    SLACK = "slack", "Slack incoming webhook"
    EMAIL = "email", "Email"
    CALLABLE = "callable", "Python callable"


class NotificationRule(models.Model):
    """When a flow run matching the filters enters one of `states`, send a message through `channel`.

    Empty filters match any run; a run must match every filter that is set (for tags:
    carry at least one of them). Only orchestrator.notifications.services writes rules,
    checking the target (webhook hosts against the allow-list) and the templates.
    """

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    flow_names = models.JSONField(default=list, blank=True, help_text="Flows whose runs it watches; empty: every flow.")
    tags = models.JSONField(default=list, blank=True, help_text="Runs with at least one of these tags; empty: any.")
    deployment_ids = models.JSONField(default=list, blank=True, help_text="Runs of these deployments (ids); empty: any.")
    states = models.JSONField(default=list, help_text="State names: a type (Failed) or a named state (Late).")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=2000, help_text="URL, comma-separated email addresses, or module:function.")
    secret = models.CharField(max_length=255, blank=True, default="",
                              help_text="Webhooks: signs each body (X-Runway-Signature: sha256=HMAC of the body).")  # fmt: skip
    title_template = models.CharField(max_length=500, blank=True, default="")
    body_template = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for a worker (its first attempt, or the next after a failure)
    SENDING = "sending", "Sending"  # a worker claimed it and is sending it now
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class NotificationDelivery(models.Model):
    """One message of a rule for one state a flow run entered (or a test message, without a run).

    (rule, state_id) is unique: however often the services, the broker or a sweep repeat
    themselves, a transition gets one delivery, and a worker sends it only after claiming
    it from Pending with a conditional update.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not database constraints: a delivery is inserted in a state's transaction, which must never fail at
    # its commit because a rule was deleted meanwhile; the ORM still deletes deliveries with their rule
    # or run, and a worker drops a delivery whose rule or run is gone.
    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="deliveries", db_index=False,
                             db_constraint=False)  # fmt: skip
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
                                 db_index=False, db_constraint=False)  # fmt: skip
    state_id = models.UUIDField(null=True, blank=True, help_text="The flow run state it announces (none for a test).")
    state_type = models.CharField(max_length=16, blank=True, default="")
    state_name = models.CharField(max_length=64, blank=True, default="")
    is_test = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a Pending delivery is due.")
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When its current attempt started.")
    last_error = models.TextField(blank=True, default="", help_text="Why the last attempt failed.")
    response = models.CharField(max_length=500, blank=True, default="", help_text="What the channel answered.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "notification deliveries"
        indexes = [
            models.Index(fields=["rule", "-created"], name="delivery_rule_created"),
            models.Index(fields=["-created"], name="delivery_created"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_due"),  # the sweep
            models.Index(fields=["flow_run"], name="delivery_flow_run"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["rule", "state_id"], name="delivery_once_per_transition"),
            models.CheckConstraint(condition=Q(is_test=True) | Q(state_id__isnull=False), name="delivery_has_state_or_is_test"),
        ]

    def __str__(self) -> str:
        what = "test" if self.is_test else self.state_name
        return f"{self.rule_id}: {what} ({self.status})"
