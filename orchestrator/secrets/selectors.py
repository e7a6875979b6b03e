"""Secrets for the CLI, API and admin: names and times, never values (not even encrypted)."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from orchestrator.secrets.models import Secret


def secret_list() -> QuerySet[Secret]:
    """Secrets by name, without their encrypted values."""
    return Secret.objects.defer("value_encrypted").order_by("name")


def secret_summary(secret: Secret) -> dict[str, Any]:
    return {"name": secret.name, "created": secret.created, "updated": secret.updated}
