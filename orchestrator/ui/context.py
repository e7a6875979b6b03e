"""Template context for every page: the user's saved views (in the navigation) and display settings."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Lazy: the admin's pages, which never show them, do not pay for the queries."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def preference():
        from orchestrator.ui.models import Preference

        found = Preference.objects.filter(user=user).first()
        return found or Preference(user=user)

    return {
        "nav_saved_views": SimpleLazyObject(lambda: list(user.saved_views.all()[:50])),
        "ui_preference": SimpleLazyObject(preference),
    }
