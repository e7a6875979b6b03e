"""`python manage.py token <verb>`: API tokens for the SDK, agents and scripts."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from orchestrator.accounts import services
from orchestrator.accounts.models import ApiToken, TokenScope
from orchestrator.cli import NounCommand, add_json_flag
from orchestrator.runs.management.render import format_time


class Command(NounCommand):
    help = "Work with API tokens: create one (shown once), list them, revoke one."

    def add_create_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, metavar="USERNAME", help="the user the token acts as")
        parser.add_argument("--name", required=True, help="what the token is for, e.g. laptop or agent-1")
        parser.add_argument(
            "--scope", choices=TokenScope.values, default=TokenScope.WRITE,
            help="read: GET requests only; write: everything (default)",
        )  # fmt: skip

    def handle_create(self, *, user: str, name: str, scope: str, **_: Any) -> None:
        """Create a token and print it. It is stored hashed: copy it now, it cannot be shown again.

        Point the SDK at a server with it:
          export RUNWAY_API_URL=http://127.0.0.1:8000/api RUNWAY_API_KEY=<token>
        """
        owner = _user(user)
        token, raw = services.token_create(user=owner, name=name, scope=scope)
        self.stdout.write(f"Created {token.scope} token {token.name!r} for {owner.get_username()}:")
        self.stdout.write(raw)
        self.stderr.write("Copy it now: it is stored hashed and will not be shown again.")

    def add_ls_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", metavar="USERNAME", help="only this user's tokens")
        parser.add_argument("--all", action="store_true", dest="show_all", help="include revoked tokens")
        add_json_flag(parser)

    def handle_ls(self, *, user: str | None, show_all: bool, as_json: bool, **_: Any) -> None:
        """List tokens, newest first: name, owner, prefix, scope, last use (never the secret)."""
        tokens = ApiToken.objects.select_related("user").order_by("-created")
        if user:
            tokens = tokens.filter(user=_user(user))
        if not show_all:
            tokens = tokens.filter(revoked__isnull=True)
        rows = [
            {"id": t.pk, "name": t.name, "user": t.user.get_username(), "prefix": t.prefix, "scope": t.scope,
             "created": t.created, "last_used": t.last_used, "revoked": t.revoked}
            for t in tokens
        ]  # fmt: skip
        if as_json:
            return self.write_json(rows)
        if not rows:
            return self.stdout.write("No tokens; create one with `python manage.py token create --user U --name N`.")
        self.write_table(
            ("ID", "NAME", "USER", "PREFIX", "SCOPE", "CREATED", "LAST USED", "REVOKED"),
            [(r["id"], r["name"], r["user"], r["prefix"], r["scope"], format_time(r["created"]),
              format_time(r["last_used"]), format_time(r["revoked"])) for r in rows],
        )  # fmt: skip

    def add_revoke_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("token", metavar="TOKEN", help="the token's name, its prefix (rwy_...), or its id")
        parser.add_argument("--user", metavar="USERNAME", help="look the name up among this user's tokens")

    def handle_revoke(self, *, token: str, user: str | None, **_: Any) -> None:
        """Revoke a token: requests carrying it are refused from now on."""
        found = services.token_find(ref=token, user=_user(user) if user else None)
        services.token_revoke(token=found)
        self.stdout.write(f"Revoked token {found.name!r} ({found.prefix}...) of {found.user.get_username()}.")


def _user(username: str):
    User = get_user_model()
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise CommandError(
            f"no user named {username!r}; create one with `python manage.py createsuperuser`"
        ) from None
