"""The live pages' fallback when their websocket drops: the same changes, asked for over HTTP."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orchestrator.exceptions import InvalidInput
from orchestrator.ui import live


@login_required
def live_changes(request: HttpRequest) -> JsonResponse:
    """?page=&id=&log_after=&query=&since=: what changed since `since` (the `since` this answered last)."""
    try:
        sub = live.subscription(request.GET.dict())
        since = parse_datetime(request.GET.get("since") or "") or timezone.now()
    except (InvalidInput, ValueError) as error:
        return JsonResponse({"error": str(error)}, status=400)
    seen = live.Seen(since=since, log_after=sub.get("log_after", 0))
    found = live.changes(sub, seen)
    return JsonResponse({**found, "since": seen.since.isoformat(), "log_after": seen.log_after})
