"""The UI's per-user rows in the admin: saved views and display preferences."""
from __future__ import annotations

from django.contrib import admin

from orchestrator.ui.models import Preference, SavedView


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "page", "query", "created"]
    list_filter = ["page"]
    search_fields = ["name", "user__username", "query"]


@admin.register(Preference)
class PreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "theme", "palette"]
    list_filter = ["theme", "palette"]
    search_fields = ["user__username"]
