"""A nudge to the live UI that runs or logs changed, sent on the channel layer after the commit.

The database is the truth: each open page reads what changed from it every
RUNWAY_UI_LIVE_SECONDS (orchestrator/ui/live.py). A nudge only makes the pages
look at once. It is sent where it can reach a page: from every process when
the channel layer is shared (Redis, RUNWAY_CHANNEL_LAYER_URL), and from the
server process itself with the local in-memory layer. At most one nudge per
NUDGE_INTERVAL per process, so a burst of states costs one message.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import transaction

GROUP = "runway-live"
NUDGE_INTERVAL = 0.2
_state = {"local_consumers": False, "last": 0.0}
_lock = threading.Lock()
log = logging.getLogger(__name__)


def serve_local_consumers() -> None:
    """Called by the ASGI application: this process has pages listening on its in-memory layer."""
    _state["local_consumers"] = True


def _enabled() -> bool:
    return _state["local_consumers"] or bool(settings.RUNWAY_CHANNEL_LAYER_URL)


def nudge_after_commit() -> None:
    """Ask the live pages to look for changes once the current transaction commits."""
    if not _enabled():
        return
    now = time.monotonic()
    with _lock:
        if now - _state["last"] < NUDGE_INTERVAL:
            return
        _state["last"] = now
    transaction.on_commit(_send)


def _send() -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "live.nudge"})
    except Exception as error:  # a nudge is an optimisation: the pages look by themselves anyway
        log.debug("live nudge not sent: %s", error)
