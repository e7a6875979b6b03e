"""What a delivery says: the rule's templates filled in with the run and its state, and the JSON around them.

Built on the worker when it sends, from the state row the delivery names, so a
message carries the state's own message (a failure's error) and a link to the
run's page under RUNWAY_UI_URL. The same dict is the generic webhook's body and
what a callable receives; Slack gets {"text": ...}; email the title as subject.
"""
from __future__ import annotations

from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.utils import timezone

from orchestrator.notifications.models import NotificationDelivery, NotificationRule
from orchestrator.notifications.vocabulary import DEFAULT_BODY, DEFAULT_TITLE, fill_template
from orchestrator.runs.models import FlowRunState

MAX_MESSAGE_CHARS = 4000  # a state message (a traceback) is cut to this in a notification


def run_url(flow_run_id: object) -> str:
    return f"{settings.RUNWAY_UI_URL.rstrip('/')}/runs/{flow_run_id}/"


def delivery_message(delivery: NotificationDelivery) -> dict[str, Any]:
    """The message of a delivery (its rule, flow run and deployment loaded with it)."""
    values = _test_values(delivery.rule) if delivery.is_test else _run_values(delivery)
    return build_message(delivery.rule, values, delivery_id=str(delivery.pk), test=delivery.is_test)


def build_message(rule: NotificationRule, values: dict[str, str], *, delivery_id: str, test: bool) -> dict[str, Any]:
    title = " ".join(fill_template(rule.title_template or DEFAULT_TITLE, values).split())  # one line: a subject
    body = fill_template(rule.body_template or DEFAULT_BODY, values).strip()
    return {
        "text": f"{title}\n{body}", "title": title, "body": body, "test": test, "delivery_id": delivery_id,
        "rule": {"id": rule.pk, "name": rule.name},
        "flow_run": {"id": values["flow_run_id"] or None, "name": values["flow_run_name"], "flow_name": values["flow_name"],
                     "deployment": values["deployment"] or None, "tags": values["tags"].split(",") if values["tags"] else [],
                     "url": values["flow_run_url"]},
        "state": {"type": values["state_type"], "name": values["state_name"], "message": values["state_message"],
                  "timestamp": values["timestamp"]},
    }  # fmt: skip


def _run_values(delivery: NotificationDelivery) -> dict[str, str]:
    run = delivery.flow_run
    state = FlowRunState.objects.filter(pk=delivery.state_id).values("message", "timestamp").first() or {}
    when = state.get("timestamp") or delivery.created
    deployment = run.deployment
    return {
        "flow_run_name": run.name, "flow_run_id": str(run.pk), "flow_name": run.flow.name,
        "deployment": f"{run.flow.name}/{deployment.name}" if deployment else "",
        "tags": ",".join(map(str, run.tags or [])), "state_name": delivery.state_name,
        "state_type": delivery.state_type, "state_message": _cut(state.get("message") or ""),
        "timestamp": when.astimezone(dt_timezone.utc).isoformat(), "flow_run_url": run_url(run.pk),
        "rule_name": delivery.rule.name,
    }  # fmt: skip


def _test_values(rule: NotificationRule) -> dict[str, str]:
    """A made-up failed run, so that a test shows what the rule's messages look like."""
    return {
        "flow_run_name": "test-notification", "flow_run_id": "", "flow_name": (rule.flow_names or ["example-flow"])[0],
        "deployment": "", "tags": ",".join(rule.tags), "state_name": "Failed", "state_type": "FAILED",
        "state_message": f"A test of notification rule {rule.name!r}: nothing failed.",
        "timestamp": timezone.now().astimezone(dt_timezone.utc).isoformat(),
        "flow_run_url": f"{settings.RUNWAY_UI_URL.rstrip('/')}/notifications/", "rule_name": rule.name,
    }  # fmt: skip


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
