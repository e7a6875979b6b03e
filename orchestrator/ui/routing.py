"""Websocket routes of the UI."""
from django.urls import path

from orchestrator.ui.consumers import LiveConsumer

websocket_urlpatterns = [path("ws/live/", LiveConsumer.as_asgi())]
