"""Secrets set, deleted, read and re-encrypted: every writer (CLI, API, admin, SDK) comes here.

Values are encrypted before they reach the database and decrypted only by
`secret_value`, for the SDK (in process, or through the API's reveal endpoint);
each read is logged with who asked, never with the value.
"""
from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.secrets import crypto
from orchestrator.secrets.models import Secret
from orchestrator.secrets.names import check_secret_name

MAX_VALUE_LENGTH = 65_536  # characters: certificates and JSON service-account keys fit
log = logging.getLogger("orchestrator.secrets")


def secret_set(*, name: str, value: str, overwrite: bool = True) -> tuple[Secret, bool]:
    """Store `value` encrypted under `name`: (the secret, whether it was created).

    With overwrite=False an existing name is InvalidInput; otherwise its value is replaced."""
    name = check_secret_name(name)
    token = crypto.encrypt(_checked_value(value, name=name))
    if overwrite and _replace(name, token):
        return secret_get(name=name), False
    try:
        with transaction.atomic():
            return Secret.objects.create(name=name, value_encrypted=token), True
    except IntegrityError:
        if overwrite and _replace(name, token):  # created by another writer meanwhile: ours is the later value
            return secret_get(name=name), False
        raise InvalidInput(f"a secret named {name!r} exists; change its value with "
                           f"`python manage.py secret set {name}` or PUT /api/secrets/{name}/") from None  # fmt: skip


def secret_get(*, name: str) -> Secret:
    """The secret named `name` (its value still encrypted); ObjectNotFound names an unknown one."""
    name = check_secret_name(name)
    found = Secret.objects.filter(name=name).first()
    if found is None:
        raise ObjectNotFound(f"no secret named {name!r}; set it with `python manage.py secret set {name}` "
                             "(`python manage.py secret ls` lists them)")  # fmt: skip
    return found


def secret_value(*, name: str, by: str = "") -> str:
    """The decrypted value of the secret `name`, for the SDK. `by` (who asks) goes to the server's log."""
    value = crypto.decrypt(secret_get(name=name).value_encrypted, name=name)
    log.info("secret %r read%s", name, f" by {by}" if by else "")
    return value


def secret_delete(*, name: str) -> None:
    """Delete the secret `name`; flows that load it afterwards fail, naming it."""
    secret_get(name=name).delete()


def secrets_reencrypt() -> int:
    """Encrypt every value again under the first key of RUNWAY_SECRETS_KEY; returns how many.

    All or nothing: a value no current key opens is SecretUndecryptable, naming it, and nothing changes."""
    with transaction.atomic():
        rows = list(Secret.objects.select_for_update().order_by("name"))
        for secret in rows:
            token = crypto.rotate(secret.value_encrypted, name=secret.name)
            Secret.objects.filter(pk=secret.pk).update(value_encrypted=token)
    return len(rows)


def _replace(name: str, token: str) -> bool:
    return bool(Secret.objects.filter(name=name).update(value_encrypted=token, updated=timezone.now()))


def _checked_value(value: object, *, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"the value of secret {name!r} must be text, not {type(value).__name__}")
    if not value:
        raise InvalidInput(f"the value of secret {name!r} is empty; give a value, or delete the secret with "
                           f"`python manage.py secret delete {name}`")  # fmt: skip
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"the value of secret {name!r} is {len(value)} characters long; at most {MAX_VALUE_LENGTH}")
    return value
