"""ASGI entry point for the Runway server: HTTP through Django, websockets through channels.

HTTP requests are handled whole in a worker thread (orchestrator/server/handler.py says why).

The websocket routes arrive with the live UI; the router is here so one
process (`python manage.py server`) serves both from the start.
"""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django.setup(set_prefix=False)  # before anything imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from orchestrator.server.handler import SyncRequestHandler  # noqa: E402

websocket_routes: list = []

application = ProtocolTypeRouter(
    {
        "http": SyncRequestHandler(),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_routes))),
    }
)
