"""The rule for secret names, in plain Python: the services and the SDK check names the same way."""
from __future__ import annotations

import re

from orchestrator.exceptions import InvalidInput

MAX_NAME_LENGTH = 100
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")


def check_secret_name(name: object) -> str:
    """`name` if it is a valid secret name (lowercase letters, digits, '-' and '_'), else InvalidInput saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a secret needs a name (lowercase letters, digits, '-' and '_'), not {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"secret name {name[:20]!r}... is {len(name)} characters long; at most {MAX_NAME_LENGTH}")
    if not _NAME.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_") or "my-secret"
        raise InvalidInput(f"secret name {name!r} is not allowed: use lowercase letters, digits, '-' and '_', "
                           f"starting and ending with a letter or digit (e.g. {suggestion[:MAX_NAME_LENGTH]!r})")  # fmt: skip
    return name
