"""Sending a delivery's id to the workers: one Celery message by task name, on the system queue.

The orchestrator never imports `workers` (which imports the SDK), so it publishes
through a Celery app of its own, configured from the same CELERY_* settings, that
only sends: `runway.send_notification` is defined in workers/tasks.py. Every
worker consumes RUNWAY_SYSTEM_QUEUE besides its own queues. A message that
cannot be sent (the broker is down) is not an error here: the delivery stays
Pending and the workers' sweep sends it again (services.notification_deliveries_sweep).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings

TASK_NAME = "runway.send_notification"
log = logging.getLogger(__name__)
_lock = threading.Lock()
_publisher: dict[str, Any] = {}


def delivery_publish(*, delivery_ids: Iterable[object], countdown: float | None = None) -> int:
    """Send each delivery id to the workers (after `countdown` seconds); how many messages were sent."""
    sent = 0
    for delivery_id in delivery_ids:
        try:
            _app().send_task(TASK_NAME, args=[str(delivery_id)], queue=settings.RUNWAY_SYSTEM_QUEUE,
                             countdown=countdown)  # fmt: skip
            sent += 1
        except Exception as error:  # the sweep sends it again
            log.warning("notification delivery %s not sent to the workers yet (%s); the sweep will", delivery_id, error)
    return sent


def _app() -> Any:
    """The sending-only Celery app, made on first use in each process."""
    with _lock:
        if "app" not in _publisher:
            from celery import Celery

            # No fixups: the Django fixup connects worker signals, and the workers' own app has them.
            app = Celery("runway-notifications", set_as_current=False, fixups=[])
            app.config_from_object("django.conf:settings", namespace="CELERY")
            _publisher["app"] = app
        return _publisher["app"]
