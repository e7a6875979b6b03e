"""The Runway server: one ASGI process for the API, the UI, the admin and static files."""
