"""ASGI entry point for the Runway server: HTTP through Django, websockets through channels.

HTTP requests are handled whole in a worker thread (orchestrator/server/handler.py says why).

Websockets carry the live UI (orchestrator/ui/consumers.py): only from this
site's origins, only for a logged-in session.
"""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django.setup(set_prefix=False)  # before anything imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from orchestrator.server.handler import SyncRequestHandler  # noqa: E402
from orchestrator.ui.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": SyncRequestHandler(),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
