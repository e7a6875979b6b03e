"""Sending one message through a rule's channel: a webhook, Slack, email, or a Python callable.

Each sender returns a short line saying what the other end answered, or raises
DeliveryFailed saying why not, and whether trying again later may help (a
timeout, a 5xx, a refused SMTP connection) or not (a 4xx, a refused host, a
callable that cannot be imported). Runs on a worker (or in `notification test --inline`).
"""
from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import smtplib
from functools import reduce
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from orchestrator.exceptions import InvalidInput
from orchestrator.notifications import targets
from orchestrator.notifications.models import Channel, NotificationRule

SIGNATURE_HEADER = "X-Runway-Signature"
DELIVERY_HEADER = "X-Runway-Delivery"
USER_AGENT = "Runway-Notifications/1"
_RETRY_STATUSES = frozenset({408, 425, 429})
_ERROR_BODY_CHARS = 300


class DeliveryFailed(Exception):
    """Raised when a message was not delivered; `retry` says whether a later attempt may succeed."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason, self.retry = reason, retry


def send(rule: NotificationRule, message: dict[str, Any]) -> str:
    """Send `message` (messages.build_message) through the rule's channel; what the other end answered."""
    if rule.channel in (Channel.WEBHOOK, Channel.SLACK):
        payload = {"text": message["text"]} if rule.channel == Channel.SLACK else message
        return send_webhook(rule.target, payload, secret=rule.secret, delivery_id=message["delivery_id"])
    if rule.channel == Channel.EMAIL:
        return send_email(rule.target, message)
    if rule.channel == Channel.CALLABLE:
        return send_to_callable(rule.target, message)
    raise DeliveryFailed(f"unknown channel {rule.channel!r}", retry=False)


def signature(secret: str, body: bytes) -> str:
    """The X-Runway-Signature value: sha256=<hex HMAC-SHA256 of the body with the rule's secret>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(url: str, payload: dict[str, Any], *, secret: str = "", delivery_id: str = "") -> str:
    """POST the payload as JSON to the URL's host at an address checked against the allow-list just now."""
    try:
        target = targets.webhook_resolve(url)
    except targets.HostRefused as refused:
        raise DeliveryFailed(str(refused), retry=False) from None
    except OSError as error:
        raise DeliveryFailed(f"could not resolve the webhook's host: {error}", retry=True) from None
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: delivery_id}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    pinned = httpx.URL(target.url)
    headers["Host"] = pinned.netloc.decode("ascii")
    extensions = {"sni_hostname": target.hostname} if pinned.scheme == "https" else {}
    # No proxies from the environment (they would reach what the check refused), no redirects.
    with httpx.Client(timeout=settings.RUNWAY_NOTIFICATION_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
        try:
            with client.stream("POST", pinned.copy_with(host=str(target.address)), content=body, headers=headers,
                               extensions=extensions) as response:  # fmt: skip
                return _answer(response)
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"POST to {target.hostname} failed: {type(error).__name__}: {error}", retry=True) from None


def _answer(response: httpx.Response) -> str:
    """'HTTP 200' for a success; DeliveryFailed for anything else."""
    if response.is_success:
        return f"HTTP {response.status_code}"
    if response.is_redirect:
        where = response.headers.get("location", "?")
        raise DeliveryFailed(f"HTTP {response.status_code}: the webhook redirects to {where}; redirects are not "
                             "followed, give the final URL", retry=False)  # fmt: skip
    text = b""
    for chunk in response.iter_bytes():
        text += chunk
        if len(text) >= _ERROR_BODY_CHARS:
            break
    said = text[:_ERROR_BODY_CHARS].decode(errors="replace").strip()
    retry = response.status_code >= 500 or response.status_code in _RETRY_STATUSES
    raise DeliveryFailed(f"HTTP {response.status_code} {response.reason_phrase}" + (f": {said}" if said else ""),
                         retry=retry)  # fmt: skip


def send_email(target: str, message: dict[str, Any]) -> str:
    """One email to the rule's addresses, through Django's email backend (RUNWAY_EMAIL_*)."""
    addresses = targets.emails(target)
    email = EmailMessage(subject=message["title"], body=message["body"], to=addresses,
                         headers={DELIVERY_HEADER: message["delivery_id"]},
                         connection=get_connection(timeout=settings.RUNWAY_NOTIFICATION_TIMEOUT_SECONDS))  # fmt: skip
    try:
        email.send()
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as refused:
        raise DeliveryFailed(f"the mail server refused the message: {refused}", retry=False) from None
    except (smtplib.SMTPException, OSError) as error:
        where = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
        raise DeliveryFailed(f"sending email through {where} failed: {type(error).__name__}: {error}", retry=True) from None
    return f"email accepted for {', '.join(addresses)}"


def send_to_callable(target: str, message: dict[str, Any]) -> str:
    """Import "module:function" and call it with the message dict."""
    function = load_callable(target)
    try:
        answer = function(message)
    except Exception as error:  # the user's code failed: it may pass next time
        raise DeliveryFailed(f"{target} raised {type(error).__name__}: {error}", retry=True) from None
    return f"{target} returned {answer!r:.200}"


def load_callable(target: str) -> Any:
    try:  # checked again: the allow-list may have changed since the rule was saved
        module_name, _, attribute = targets.callable_path(target).partition(":")
    except InvalidInput as refused:
        raise DeliveryFailed(str(refused), retry=False) from None
    try:
        found = reduce(getattr, attribute.split("."), importlib.import_module(module_name))
    except ImportError as error:
        raise DeliveryFailed(f"cannot import {module_name!r} on this worker: {error}", retry=False) from None
    except AttributeError:
        raise DeliveryFailed(f"module {module_name!r} has no {attribute!r}", retry=False) from None
    if not callable(found):
        raise DeliveryFailed(f"{target} is not callable", retry=False)
    return found
