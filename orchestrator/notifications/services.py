"""Notification rules created, changed and deleted; deliveries attempted, retried and swept.

Every writer of rules (CLI, API, admin, UI) goes through `notification_rule_create`
and `notification_rule_update`, which check the whole rule: its states, its
target for its channel (a webhook's host against the allow-list), its templates.

A worker attempts a delivery with `notification_delivery_attempt`: it claims the
delivery (Pending and due -> Sending, one conditional UPDATE, so a message
delivered twice sends once), sends, and records Sent, or the failure: Pending
again with the next attempt due after a backoff that doubles (and a message sent
for then), or Failed once RUNWAY_NOTIFICATION_MAX_ATTEMPTS were made or when
trying again cannot help. `notification_deliveries_sweep` (every worker, on its
timer) sends again the deliveries whose message was lost, and ends as Failed
those whose worker stopped in the middle of sending: sending them again could
deliver them twice.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.notifications import channels, dispatch, messages, targets, triggers
from orchestrator.notifications.channels import DeliveryFailed
from orchestrator.notifications.models import Channel, DeliveryStatus, NotificationDelivery, NotificationRule
from orchestrator.notifications.vocabulary import check_template, state_names

MAX_NAME_LENGTH = 200
MAX_FILTER_ITEMS = 100
EARLY_SECONDS = 0.05  # a message may arrive this early for its attempt (timer rounding); earlier ones wait again
_EDITABLE = ("name", "enabled", "channel", "target", "secret", "states", "flow_names", "tags", "deployments",
             "title_template", "body_template")  # fmt: skip


class RuleInvalid(InvalidInput):
    """Raised when a rule's field is refused; `field` names it, for forms that show errors by field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


# --- rules ---------------------------------------------------------------------------------
def notification_rule_create(
    *, name: str, channel: str, target: str, states: Iterable[str], flow_names: Iterable[str] = (),
    tags: Iterable[str] = (), deployments: Iterable[str] = (), secret: str = "", title_template: str = "",
    body_template: str = "", enabled: bool = True,
) -> NotificationRule:  # fmt: skip
    """A new rule; InvalidInput names what is wrong (an unknown state, a refused webhook host, a taken name).

    `deployments` are "flow/deployment" names or ids; they are stored as ids."""
    fields = _checked(dict(name=name, channel=channel, target=target, states=states, flow_names=flow_names, tags=tags,
                           deployments=deployments, secret=secret, title_template=title_template,
                           body_template=body_template, enabled=enabled))  # fmt: skip
    if NotificationRule.objects.filter(name=fields["name"]).exists():
        raise InvalidInput(f"a notification rule named {fields['name']!r} exists; choose another name or change that one")
    try:
        with transaction.atomic():
            rule = NotificationRule.objects.create(**fields)
    except IntegrityError:
        raise InvalidInput(f"a notification rule named {fields['name']!r} exists; choose another name") from None
    triggers.forget_rules()
    return rule


def notification_rule_update(*, ref: str | int, **changes: Any) -> NotificationRule:
    """Change some fields of a rule (the same keywords as create); the whole rule is checked again."""
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise InvalidInput(f"notification rules have no field(s) {', '.join(unknown)}; they have {', '.join(_EDITABLE)}")
    rule = notification_rule_get(ref=ref)
    current = {key: getattr(rule, key) for key in _EDITABLE if key != "deployments"}
    fields = _checked({**current, "deployments": rule.deployment_ids, **changes}, kept=rule.deployment_ids)
    if NotificationRule.objects.filter(name=fields["name"]).exclude(pk=rule.pk).exists():
        raise InvalidInput(f"a notification rule named {fields['name']!r} exists; choose another name")
    for key, value in fields.items():
        setattr(rule, key, value)
    rule.save()
    triggers.forget_rules()
    return rule


def notification_rule_set_enabled(*, ref: str | int, enabled: bool) -> NotificationRule:
    """Enable or disable a rule; a disabled rule's deliveries not yet sent are not sent."""
    rule = notification_rule_get(ref=ref)
    NotificationRule.objects.filter(pk=rule.pk).update(enabled=enabled, updated=timezone.now())
    triggers.forget_rules()
    rule.refresh_from_db()
    return rule


def notification_rule_get(*, ref: str | int) -> NotificationRule:
    """A rule by id or by name."""
    text = str(ref).strip()
    rule = NotificationRule.objects.filter(pk=int(text)).first() if text.isdigit() and len(text) < 19 else None
    rule = rule or NotificationRule.objects.filter(name=text).first()
    if rule is None:
        raise ObjectNotFound(f"no notification rule {text!r}; list them with `python manage.py notification ls`")
    return rule


def notification_rule_delete(*, ref: str | int) -> None:
    """Delete a rule and its deliveries' history."""
    notification_rule_get(ref=ref).delete()
    triggers.forget_rules()


def notification_rule_test(*, ref: str | int, inline: bool = False) -> NotificationDelivery:
    """A test message of the rule (a made-up failed run), sent by a worker; `inline` sends it from this
    process now. Either way it is recorded as a delivery, marked as a test."""
    rule = notification_rule_get(ref=ref)
    delivery = NotificationDelivery.objects.create(rule=rule, is_test=True, next_attempt_at=timezone.now())
    if inline:
        notification_delivery_attempt(delivery_id=delivery.pk)
    else:
        dispatch.delivery_publish(delivery_ids=[delivery.pk])
    delivery.refresh_from_db()
    return delivery


def notification_rule_check(*, rule: NotificationRule | None = None, **fields: Any) -> dict[str, Any]:
    """The model fields a rule would have with these values (over `rule`'s, when changing one), checked
    as create and update check them, without saving: for forms that show errors by their field."""
    current = {key: getattr(rule, key) for key in _EDITABLE if key != "deployments"} if rule else {}
    kept = rule.deployment_ids if rule else []
    defaults = {"flow_names": (), "tags": (), "deployments": kept, "secret": "", "title_template": "",
                "body_template": "", "enabled": True}  # fmt: skip
    return _checked({**defaults, **current, **fields}, kept=kept)


def _checked(fields: dict[str, Any], kept: Iterable[str] = ()) -> dict[str, Any]:
    """The rule's fields, cleaned, or RuleInvalid naming the first problem (`kept`: deployment ids it had)."""
    name = _field("name", _name, fields["name"])
    channel = _field("channel", _channel, fields["channel"])
    return {
        "name": name, "channel": channel, "target": _field("target", _target, channel, str(fields["target"] or "")),
        "secret": _field("secret", _secret, channel, str(fields.get("secret") or "")),
        "states": _field("states", lambda v: state_names(_strings(v, "states")), fields["states"]),
        "flow_names": _field("flow_names", _names, fields["flow_names"], "flow name"),
        "tags": _field("tags", _names, fields["tags"], "tag"),
        "deployment_ids": _field("deployments", _deployment_ids, fields["deployments"], kept),
        "enabled": bool(fields["enabled"]), "title_template": _field("title_template", _title, fields.get("title_template") or ""),
        "body_template": _field("body_template", check_template, str(fields.get("body_template") or ""), "body template"),
    }  # fmt: skip


def _field(field: str, check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except (InvalidInput, ObjectNotFound) as error:
        raise RuleInvalid(str(error), field=field) from None


def _name(value: Any) -> str:
    name = str(value or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a notification rule needs a name of 1 to {MAX_NAME_LENGTH} characters, not {name[:40]!r}")
    return name


def _channel(value: Any) -> str:
    channel = str(value or "").strip().lower()
    if channel not in Channel.values:
        raise InvalidInput(f"unknown channel {value!r}; use one of: {', '.join(Channel.values)}")
    return channel


def _secret(channel: str, secret: str) -> str:
    if secret and channel not in (Channel.WEBHOOK, Channel.SLACK):
        raise InvalidInput("a secret signs webhook bodies; email and callable rules take none")
    if len(secret) > 255:
        raise InvalidInput("a webhook secret is at most 255 characters")
    return secret


def _target(channel: str, target: str) -> str:
    if not target.strip():
        example = {"email": "oncall@example.com", "callable": "mypackage.alerts:notify"}.get(channel, "https://host/path")
        raise InvalidInput(f"a {channel} rule needs a target, e.g. {example}")
    if len(target) > 2000:
        raise InvalidInput("a notification target is at most 2000 characters")
    if channel == Channel.EMAIL:
        return ", ".join(targets.emails(target))
    if channel == Channel.CALLABLE:
        return targets.callable_path(target)
    return targets.webhook_url(target)


def _title(text: str) -> str:
    if len(text) > 500 or "\n" in text:
        raise InvalidInput("a title template is one line of at most 500 characters")
    return check_template(text, "title template")


def _strings(values: Any, label: str) -> list[str]:
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, Iterable) or isinstance(values, dict):
        raise InvalidInput(f"{label} must be a list of names, not {values!r:.80}")
    items = [str(value).strip() for value in values if str(value).strip()]
    if len(items) > MAX_FILTER_ITEMS:
        raise InvalidInput(f"{label}: at most {MAX_FILTER_ITEMS} items, not {len(items)}")
    return items


def _names(values: Any, label: str) -> list[str]:
    names = list(dict.fromkeys(_strings(values, f"{label}s")))
    too_long = [name for name in names if len(name) > 255]
    if too_long:
        raise InvalidInput(f"{label} {too_long[0][:40]!r}... is longer than 255 characters")
    return names


def _deployment_ids(refs: Any, kept: Iterable[str] = ()) -> list[str]:
    """Deployment ids from "flow/deployment" names or ids; ids the rule already had are `kept` as they are
    (a deployment deleted since matches no run, and does not stop other changes to the rule)."""
    from orchestrator.deployments.services import deployment_get

    kept = set(kept)
    return list(dict.fromkeys(ref if ref in kept else str(deployment_get(ref=ref).pk)
                              for ref in _strings(refs, "deployments")))  # fmt: skip


# --- deliveries ----------------------------------------------------------------------------
def notification_delivery_attempt(*, delivery_id: UUID, now: datetime | None = None) -> str:
    """Claim the delivery if it is Pending and due, send it, record the outcome; answer what happened
    ("sent", "retry in N s", "failed", or why nothing was done)."""
    now = now or timezone.now()
    due = NotificationDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING,
                                              next_attempt_at__lte=now + timedelta(seconds=EARLY_SECONDS))  # fmt: skip
    if not due.update(status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, claimed_at=now, updated=now):
        return _not_claimed(delivery_id, now)
    delivery = (NotificationDelivery.objects.select_related("rule", "flow_run__flow", "flow_run__deployment")
                .filter(pk=delivery_id).first())  # fmt: skip
    if delivery is None:  # its rule was deleted meanwhile
        NotificationDelivery.objects.filter(pk=delivery_id).delete()
        return "dropped: its rule was deleted"
    try:
        response = _send(delivery)
    except DeliveryFailed as failure:
        return _record_failure(delivery, failure.reason, retry=failure.retry)
    except InvalidInput as error:  # a target saved before a check tightened (the allow-list changed)
        return _record_failure(delivery, str(error), retry=False)
    except Exception as error:  # a bug or an unforeseen error: recorded like any failure, and tried again
        return _record_failure(delivery, f"unexpected error: {type(error).__name__}: {error}", retry=True)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENT, response=response[:500], sent_at=timezone.now(), updated=timezone.now(), claimed_at=None)
    return "sent"


def _not_claimed(delivery_id: UUID, now: datetime) -> str:
    """Why a message sends nothing. One that came before its delivery's next attempt is due (a clock
    ahead, a message repeated) is sent again for then, so the backoff holds and nothing waits for the sweep."""
    row = NotificationDelivery.objects.filter(pk=delivery_id).values("status", "next_attempt_at").first()
    if row is None:
        return "dropped: no such delivery (its rule or run was deleted)"
    if row["status"] == DeliveryStatus.PENDING and row["next_attempt_at"] is not None:
        wait = max(0.0, (row["next_attempt_at"] - now).total_seconds())
        dispatch.delivery_publish(delivery_ids=[delivery_id], countdown=wait)
        return f"not due yet: sent again for {wait:.2f} s from now"
    return f"not sent again: it is {row['status']}"


def _send(delivery: NotificationDelivery) -> str:
    if not delivery.is_test:
        if delivery.flow_run is None:
            raise DeliveryFailed("its flow run was deleted before it was sent", retry=False)
        if not delivery.rule.enabled:
            raise DeliveryFailed("the rule was disabled before this was sent", retry=False)
    return channels.send(delivery.rule, messages.delivery_message(delivery))


def _record_failure(delivery: NotificationDelivery, reason: str, *, retry: bool) -> str:
    """Pending again after the backoff (a message sent for then), or Failed for good."""
    now = timezone.now()
    attempts = delivery.attempts  # read after the claim counted this attempt
    still_sending = NotificationDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING)
    if retry and attempts < settings.RUNWAY_NOTIFICATION_MAX_ATTEMPTS:
        delay = backoff_seconds(attempts)
        still_sending.update(status=DeliveryStatus.PENDING, last_error=reason, next_attempt_at=now + timedelta(seconds=delay),
                             claimed_at=None, updated=now)  # fmt: skip
        dispatch.delivery_publish(delivery_ids=[delivery.pk], countdown=delay)
        return f"retry in {delay:g} s: {reason}"
    if retry:
        reason = f"{reason} (gave up after {attempts} attempt{'s' * (attempts != 1)})"
    still_sending.update(status=DeliveryStatus.FAILED, last_error=reason, claimed_at=None, updated=now)
    return f"failed: {reason}"


def backoff_seconds(attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: BACKOFF, doubling each time, at most BACKOFF_MAX."""
    base = settings.RUNWAY_NOTIFICATION_BACKOFF_SECONDS
    return min(base * 2 ** max(0, attempts - 1), settings.RUNWAY_NOTIFICATION_BACKOFF_MAX_SECONDS)


def sending_lease_seconds() -> float:
    """How long a delivery may stay Sending before its worker is presumed gone."""
    return max(300.0, 10 * settings.RUNWAY_NOTIFICATION_TIMEOUT_SECONDS)


def notification_deliveries_sweep(*, now: datetime | None = None, limit: int = 500) -> tuple[int, int]:
    """Send again the deliveries still Pending RUNWAY_NOTIFICATION_RESEND_SECONDS after they were due
    (their message was lost), and fail those whose worker stopped while sending them. Safe for
    several workers at once: each row changes by a conditional UPDATE. Returns (resent, failed)."""
    now = now or timezone.now()
    overdue = NotificationDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lt=now - timedelta(seconds=settings.RUNWAY_NOTIFICATION_RESEND_SECONDS))
    again = [pk for pk in list(overdue.values_list("pk", flat=True)[:limit])
             if overdue.filter(pk=pk).update(next_attempt_at=now, updated=now)]  # fmt: skip
    dispatch.delivery_publish(delivery_ids=again)
    lost = NotificationDelivery.objects.filter(status=DeliveryStatus.SENDING,
                                               claimed_at__lt=now - timedelta(seconds=sending_lease_seconds()))  # fmt: skip
    failed = lost.update(status=DeliveryStatus.FAILED, updated=now, claimed_at=None,
                         last_error="the worker sending it stopped before recording the outcome; not sent again, "
                                    "so that it is never delivered twice")  # fmt: skip
    return len(again), failed
