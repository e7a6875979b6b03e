"""What the UI keeps per user: saved filters (named views) and display preferences."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class SavedView(models.Model):
    """A list page's filter saved under a name; the navigation links to it."""

    PAGES = [("flow_runs", "Flow runs"), ("task_runs", "Task runs")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=100)
    page = models.CharField(max_length=16, choices=PAGES)
    query = models.TextField(blank=True, default="", help_text="The filter as a URL query string.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="savedview_unique_name_per_user")]

    def __str__(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return f"/{self.page.replace('_', '-')}/?{self.query}"


class Preference(models.Model):
    """A user's theme and palette: states keep their icon and text whatever the colours."""

    THEMES = [("system", "As the system"), ("light", "Light"), ("dark", "Dark")]
    PALETTES = [("standard", "Standard"), ("colorblind", "Colour-blind friendly (Okabe-Ito)")]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ui_preference")
    theme = models.CharField(max_length=16, choices=THEMES, default="system")
    palette = models.CharField(max_length=16, choices=PALETTES, default="standard")

    def __str__(self) -> str:
        return f"{self.user}: {self.theme}, {self.palette}"
