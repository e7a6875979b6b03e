"""A secret: a unique name and its value, encrypted (orchestrator/secrets/crypto.py)."""
from __future__ import annotations

from django.db import models

from orchestrator.secrets.names import MAX_NAME_LENGTH


class Secret(models.Model):
    """A value flows read by name (`Secret.load(name).get()`).

    Only orchestrator.secrets.services writes secrets: it checks the name and stores the
    value as a Fernet token. Nothing renders `value_encrypted`; the services decrypt it for
    the SDK only. Saving a secret sends no live event (the UI streams runs and logs only).
    """

    name = models.CharField(max_length=MAX_NAME_LENGTH, unique=True,
                            help_text="Lowercase letters, digits, '-' and '_'.")  # fmt: skip
    value_encrypted = models.TextField(editable=False, help_text="The value as a Fernet token; never shown.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
