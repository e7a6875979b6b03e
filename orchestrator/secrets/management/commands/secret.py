"""`python manage.py secret <verb>`: values stored encrypted that flows read by name (docs/secrets.md)."""
from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from orchestrator.cli import NounCommand, add_json_flag
from orchestrator.runs.management.render import format_time
from orchestrator.secrets import crypto, selectors, services


class Command(NounCommand):
    help = ("Work with secrets: values (API keys, passwords) stored encrypted, which flows read by name with "
            "`Secret.load(name).get()` and which are never shown again (docs/secrets.md).")  # fmt: skip
    stealth_options = ("stdin",)

    def add_set_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the secret's name: lowercase letters, digits, '-' and '_'")
        parser.add_argument("--value", help="the value (visible in your shell history and the process list: "
                                            "prefer stdin or the prompt)")  # fmt: skip

    def handle_set(self, *, name: str, value: str | None, **options: Any) -> None:
        """Create a secret, or replace its value.

        The value comes from --value, else from stdin when it is not a terminal
        (`secret set NAME < file`, one trailing newline dropped), else from a prompt
        that does not echo. It is stored encrypted and never printed.
        """
        if value is None:
            value = _read_value(options.get("stdin") or sys.stdin, name)
        secret, created = services.secret_set(name=name, value=value)
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} secret {secret.name!r}. Read it in a flow with "
                          f"`Secret.load({secret.name!r}).get()` (from sdk.secrets import Secret).")  # fmt: skip

    def add_ls_arguments(self, parser: CommandParser) -> None:
        add_json_flag(parser)

    def handle_ls(self, *, as_json: bool, **_: Any) -> None:
        """List secrets by name, with when they were created and last changed (never their values)."""
        rows = [selectors.secret_summary(secret) for secret in selectors.secret_list()]
        if as_json:
            return self.write_json(rows)
        if not rows:
            return self.stdout.write("No secrets; set one with `python manage.py secret set NAME`.")
        self.write_table(("NAME", "CREATED", "UPDATED"),
                         [(r["name"], format_time(r["created"]), format_time(r["updated"])) for r in rows])  # fmt: skip

    def add_delete_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the secret's name")

    def handle_delete(self, *, name: str, **_: Any) -> None:
        """Delete a secret: flows that load it afterwards fail, naming it."""
        services.secret_delete(name=name)
        self.stdout.write(f"Deleted secret {name!r}.")

    def handle_reencrypt(self, **_: Any) -> None:
        """Encrypt every secret again under the first key of RUNWAY_SECRETS_KEY (after a key rotation).

        Put the new key first in RUNWAY_SECRETS_KEY and keep the old one after it, run
        this, then remove the old key. All or nothing: a value no key opens stops it, named.
        """
        count = services.secrets_reencrypt()
        self.stdout.write(f"Re-encrypted {count} secret(s) under the current key.")

    def handle_generate_key(self, **_: Any) -> None:
        """Print a new random Fernet key, for RUNWAY_SECRETS_KEY."""
        self.stdout.write(crypto.generate_key())


def _read_value(stdin: Any, name: str) -> str:
    """The value from stdin when it is piped, else from a prompt that does not echo (asked twice)."""
    if not stdin.isatty():
        text = stdin.read()
        return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    first = getpass.getpass(f"Value of secret {name!r}: ")
    if getpass.getpass("Again, to confirm: ") != first:
        raise CommandError("the two values differ; nothing was stored")
    return first
