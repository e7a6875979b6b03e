"""A nudge to the live UI that runs or logs changed, sent on the channel layer after the commit.

The database is the truth: each open page reads what changed from it every
RUNWAY_UI_LIVE_SECONDS (orchestrator/ui/live.py). A nudge only makes the pages
look at once. It is sent where it can reach a page: from every process when
the channel layer is shared (Redis, RUNWAY_CHANNEL_LAYER_URL), and from the
server process itself with the local in-memory layer. A process sends at most
one nudge per NUDGE_INTERVAL: the first change of a burst is sent at once and
the rest of the burst in one nudge at the end of the interval, so the last
change is never left waiting for the pages' own look.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import transaction

GROUP = "runway-live"
NUDGE_INTERVAL = 0.2
SEND_TIMEOUT = 2.0
_state: dict[str, Any] = {"loop": None, "last": 0.0, "timer": None}
_lock = threading.Lock()
log = logging.getLogger(__name__)


def serve_local_consumers(loop: asyncio.AbstractEventLoop) -> None:
    """Called by a live page's consumer: this process's pages listen on `loop`, where nudges go."""
    _state["loop"] = loop


def nudge_after_commit() -> None:
    """Ask the live pages to look for changes once the current transaction commits."""
    if _state["loop"] is not None or settings.RUNWAY_CHANNEL_LAYER_URL:
        transaction.on_commit(_request)


def _request() -> None:
    with _lock:
        if _state["timer"] is not None:
            return  # a nudge is already due: it covers this change too
        wait = max(0.0, _state["last"] + NUDGE_INTERVAL - time.monotonic())
        # Not a daemon: a process that ends right after its last change still sends that nudge
        # (its exit waits at most NUDGE_INTERVAL and SEND_TIMEOUT for it).
        timer = _state["timer"] = threading.Timer(wait, _fire)
    timer.start()


def _fire() -> None:
    with _lock:
        _state["timer"], _state["last"] = None, time.monotonic()
    from channels.layers import get_channel_layer

    message = get_channel_layer().group_send(GROUP, {"type": "live.nudge"})
    try:
        if _state["loop"] is not None:  # the layer lives on the server's event loop
            asyncio.run_coroutine_threadsafe(message, _state["loop"]).result(timeout=SEND_TIMEOUT)
        else:
            asyncio.run(asyncio.wait_for(message, SEND_TIMEOUT))
    except Exception as error:  # a nudge is an optimisation: the pages look by themselves anyway
        log.debug("live nudge not sent: %s", error)
