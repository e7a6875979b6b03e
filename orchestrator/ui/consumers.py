"""The live channel: a websocket per open page, sending what changed (orchestrator/ui/live.py).

Only a logged-in user may connect (the session cookie; the origin is checked
by AllowedHostsOriginValidator in orchestrator/asgi.py). The page sends its
subscription; the consumer looks every RUNWAY_UI_LIVE_SECONDS, or at once when
nudged on the channel layer, and sends only what changed.
"""
from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from orchestrator.exceptions import InvalidInput
from orchestrator.runs import events
from orchestrator.runs.events import GROUP
from orchestrator.ui import live

NOT_LOGGED_IN = 4401


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=NOT_LOGGED_IN)
            return
        self.sub: dict[str, Any] | None = None
        self.seen = live.Seen()
        self.wake = asyncio.Event()
        self.loop_task: asyncio.Task | None = None
        await self.channel_layer.group_add(GROUP, self.channel_name)
        events.serve_local_consumers(asyncio.get_running_loop())  # this process's changes nudge its pages
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        try:
            self.sub = live.subscription(content if isinstance(content, dict) else {})
        except InvalidInput as error:
            await self.send_json({"error": str(error)})
            return
        if self.loop_task is None:
            self.loop_task = asyncio.ensure_future(self._watch())
        self.wake.set()

    async def live_nudge(self, event: dict[str, Any]) -> None:
        self.wake.set()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "loop_task", None):
            self.loop_task.cancel()
        if hasattr(self, "wake"):
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def _watch(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=settings.RUNWAY_UI_LIVE_SECONDS)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            found = await database_sync_to_async(live.changes)(self.sub, self.seen)
            if found:
                await self.send_json(found)
