"""Secret values encrypted with Fernet (`cryptography`: AES-128-CBC, authenticated by HMAC-SHA256).

The keys come from RUNWAY_SECRETS_KEY: comma-separated Fernet keys, the first one
encrypting and every one decrypting, so a key is rotated by putting a new one in
front and running `python manage.py secret reencrypt`. Unset, the key is derived
from Django's SECRET_KEY (HKDF-SHA256): nothing to configure, but changing
SECRET_KEY then leaves the stored values unreadable. The derived key is always
tried last when decrypting, so values stored before RUNWAY_SECRETS_KEY was set stay
readable until they are re-encrypted.
"""
from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from orchestrator.exceptions import OrchestratorError

_HKDF_INFO = b"runway secrets v1"
GENERATE_KEY = "python manage.py secret generate-key"


class SecretsKeyInvalid(OrchestratorError, ValueError):
    """Raised when RUNWAY_SECRETS_KEY holds something other than comma-separated Fernet keys."""


class SecretUndecryptable(OrchestratorError):
    """Raised when a stored value opens with none of the current keys (the key it was stored under is gone)."""


def encrypt(value: str) -> str:
    """The Fernet token (ASCII) of `value`, under the current first key."""
    return _cipher(settings.RUNWAY_SECRETS_KEY, settings.SECRET_KEY).encrypt(value.encode()).decode("ascii")


def decrypt(token: str, *, name: str) -> str:
    """The value `token` holds; SecretUndecryptable names the secret and the likely cause."""
    try:
        return _cipher(settings.RUNWAY_SECRETS_KEY, settings.SECRET_KEY).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretUndecryptable(_undecryptable(name)) from None


def rotate(token: str, *, name: str) -> str:
    """`token` encrypted again under the current first key."""
    try:
        return _cipher(settings.RUNWAY_SECRETS_KEY, settings.SECRET_KEY).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SecretUndecryptable(_undecryptable(name)) from None


def generate_key() -> str:
    """A new random Fernet key, for RUNWAY_SECRETS_KEY."""
    return Fernet.generate_key().decode("ascii")


def derived_key(secret_key: str) -> bytes:
    """The Fernet key used when RUNWAY_SECRETS_KEY is unset: HKDF-SHA256 of Django's SECRET_KEY."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


@functools.lru_cache(maxsize=8)
def _cipher(configured: str, secret_key: str) -> MultiFernet:
    """Configured keys first (the first encrypts), then the one derived from SECRET_KEY."""
    keys = [item.strip() for item in configured.split(",") if item.strip()]
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise SecretsKeyInvalid(
                f"RUNWAY_SECRETS_KEY: key {position} of {len(keys)} is not a Fernet key (32 url-safe "
                f"base64-encoded bytes, 44 characters); make one with `{GENERATE_KEY}`"
            ) from None
    return MultiFernet([*fernets, Fernet(derived_key(secret_key))])


def _undecryptable(name: str) -> str:
    if settings.RUNWAY_SECRETS_KEY.strip():
        cause = ("none of the keys in RUNWAY_SECRETS_KEY (nor the one derived from SECRET_KEY) opens it: "
                 "the key it was stored under was removed")  # fmt: skip
        fix = "put that key back in RUNWAY_SECRETS_KEY, after the current one"
    else:
        cause = ("RUNWAY_SECRETS_KEY is unset, so the key is derived from SECRET_KEY (RUNWAY_SECRET_KEY, or "
                 "RUNWAY_HOME/secret_key), and SECRET_KEY changed since it was stored")  # fmt: skip
        fix = "restore the old SECRET_KEY"
    return (f"secret {name!r} cannot be decrypted: {cause}. To read it, {fix}; otherwise set it again with "
            f"`python manage.py secret set {name}` (docs/secrets.md, key rotation)")  # fmt: skip
