"""Creating, checking and revoking API tokens, and the first local account."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from orchestrator.accounts.models import ApiToken, TokenScope
from orchestrator.exceptions import InvalidInput, ObjectNotFound

TOKEN_PREFIX = "rwy_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per token per minute


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, user: AbstractBaseUser, name: str, scope: str = TokenScope.WRITE) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the secret, which is never stored and never shown again."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput(f"token name {name!r} must be 1 to 100 characters")
    if scope not in TokenScope.values:
        raise InvalidInput(f"unknown token scope {scope!r}; use one of: {', '.join(TokenScope.values)}")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user, name=name, scope=scope, prefix=raw[: len(TOKEN_PREFIX) + 8], digest=_digest(raw)
            )
    except IntegrityError:
        raise InvalidInput(
            f"user {user.get_username()!r} already has an active token named {name!r}; "
            "choose another name or revoke it first"
        ) from None
    return token, raw


def token_authenticate(*, raw: str) -> ApiToken | None:
    """The active token whose secret is `raw`, its user active, or None.

    Every API request makes this lookup, so it is one precomposed statement
    (Django compiling the equivalent query cost more than running it). The
    token's `user` loads only if something reads it: the API's permission
    needs only the token.
    """
    if not raw.startswith(TOKEN_PREFIX):
        return None
    found = list(ApiToken.objects.raw(_token_sql(), [_digest(raw)]))
    if not found:
        return None
    token = found[0]
    now = timezone.now()
    if token.last_used is None or now - token.last_used > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token


@lru_cache(maxsize=1)
def _token_sql() -> str:
    token, user = ApiToken._meta, get_user_model()._meta
    quote = connection.ops.quote_name
    return (
        f"SELECT t.id, t.name, t.prefix, t.scope, t.last_used, t.user_id FROM {quote(token.db_table)} t "
        f"JOIN {quote(user.db_table)} u ON u.{quote(user.pk.column)} = t.user_id "
        "WHERE t.digest = %s AND t.revoked IS NULL AND u.is_active"
    )


def token_find(*, ref: str, user: AbstractBaseUser | None = None) -> ApiToken:
    """An active token by name, by its shown prefix (or the whole secret), or by id; of `user` when given."""
    tokens = ApiToken.objects.select_related("user").filter(revoked__isnull=True)
    if user is not None:
        tokens = tokens.filter(user=user)
    ref = ref.strip()
    matches = list(tokens.filter(name=ref)[:2]) if ref else []
    if not matches and ref.startswith(TOKEN_PREFIX):
        whole = len(ref) > len(TOKEN_PREFIX) + 8
        found = tokens.filter(digest=_digest(ref)) if whole else tokens.filter(prefix__startswith=ref)
        matches = list(found[:2])
    if not matches and ref.isdigit():
        matches = list(tokens.filter(pk=int(ref)))
    if len(matches) != 1:
        why = "is ambiguous" if matches else "matches no active token"
        raise ObjectNotFound(f"token {ref!r} {why}; list tokens with `python manage.py token ls`")
    return matches[0]


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token: requests carrying it are refused from now on. The row stays, for the record."""
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
    return token


@dataclass
class Bootstrap:
    """What `account_bootstrap` made: the secrets are shown once, then forgotten."""

    username: str
    password: str
    token: str


def account_bootstrap(*, username: str = "admin") -> Bootstrap | None:
    """On an instance without users, create a superuser with a random password and a write token for it."""
    User = get_user_model()
    if User.objects.exists():
        return None
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_superuser(username=username, email="", password=password)
        _, raw = token_create(user=user, name="local", scope=TokenScope.WRITE)
    return Bootstrap(username=username, password=password, token=raw)
