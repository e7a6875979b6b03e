"""Reading rules and deliveries for the CLI, API, admin and UI.

A webhook's URL is shown without its path and query (`https://hooks.slack.com/…`):
a Slack incoming-webhook URL is itself a credential, and read-only tokens may
list rules. Secrets are never shown, only whether a rule has one.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.db.models import Count, Q, QuerySet

from orchestrator.notifications.models import Channel, DeliveryStatus, NotificationDelivery, NotificationRule
from orchestrator.notifications.services import notification_rule_get


def rule_list() -> QuerySet[NotificationRule]:
    """Rules by name, each with `sent_count` and `failed_count` over its deliveries."""
    return NotificationRule.objects.annotate(
        sent_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.SENT)),
        failed_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
    ).order_by("name")


def rule_summary(rule: NotificationRule) -> dict[str, Any]:
    return {
        "id": rule.pk, "name": rule.name, "enabled": rule.enabled, "channel": rule.channel,
        "target": shown_target(rule), "has_secret": bool(rule.secret), "states": rule.states,
        "flow_names": rule.flow_names, "tags": rule.tags, "deployment_ids": rule.deployment_ids,
        "title_template": rule.title_template, "body_template": rule.body_template,
        "sent_count": getattr(rule, "sent_count", None), "failed_count": getattr(rule, "failed_count", None),
        "created": rule.created, "updated": rule.updated,
    }  # fmt: skip


def rule_detail(*, ref: str | int, deliveries: int = 20) -> dict[str, Any]:
    """A rule with its latest deliveries, newest first."""
    rule = rule_list().get(pk=notification_rule_get(ref=ref).pk)
    recent = delivery_list(rule_id=rule.pk)[:deliveries]
    return {**rule_summary(rule), "deliveries": [delivery_summary(d) for d in recent]}


def shown_target(rule: NotificationRule) -> str:
    """The target as lists show it: a webhook's URL without its path and query."""
    if rule.channel not in (Channel.WEBHOOK, Channel.SLACK):
        return rule.target
    parts = urlsplit(rule.target)
    hidden = "…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/{hidden}"


def delivery_list(*, rule_id: int | None = None, status: str | None = None) -> QuerySet[NotificationDelivery]:
    """Deliveries, newest first, with their rule and flow run."""
    found = NotificationDelivery.objects.select_related("rule", "flow_run").order_by("-created", "-id")
    if rule_id is not None:
        found = found.filter(rule_id=rule_id)
    if status:
        found = found.filter(status=status)
    return found


def delivery_summary(delivery: NotificationDelivery) -> dict[str, Any]:
    run = delivery.flow_run
    return {
        "id": delivery.pk, "rule_id": delivery.rule_id, "rule_name": delivery.rule.name,
        "flow_run_id": run.pk if run else None, "flow_run_name": run.name if run else None,
        "state_id": delivery.state_id, "state_type": delivery.state_type or None,
        "state_name": delivery.state_name or None, "is_test": delivery.is_test, "status": delivery.status,
        "attempts": delivery.attempts, "last_error": delivery.last_error, "response": delivery.response,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == DeliveryStatus.PENDING else None,
        "created": delivery.created, "sent_at": delivery.sent_at, "updated": delivery.updated,
    }  # fmt: skip
