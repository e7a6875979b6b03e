"""`python manage.py server`: migrate, create the first account if there is none, serve.

One ASGI process (daphne, the channels server) serves the REST API, the admin,
the UI and static files (WhiteNoise), and websockets for the live UI. It reads
the same database as ephemeral runs, so their history is there.
"""
from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from orchestrator.accounts.services import account_bootstrap


class Command(BaseCommand):
    help = "Apply migrations and serve the API, admin, UI and static files on one ASGI process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
        parser.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
        parser.add_argument("--access-log", action="store_true", help="print a line per request")

    def handle(self, *args: Any, host: str, port: int, no_migrate: bool, access_log: bool, **options: Any) -> None:
        if not no_migrate:
            self.stdout.write("Applying database migrations...")
            call_command("migrate", interactive=False, verbosity=0)
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        first = account_bootstrap()
        if first is not None:
            self.stdout.write(self.style.WARNING(first_account_message(first, base)))
        self.stdout.write(f"Runway server at {base}/  (API {base}/api/, docs {base}/api/docs/, admin {base}/admin/)")
        from daphne.cli import CommandLineInterface

        argv = ["--bind", host, "--port", str(port), "--verbosity", "1" if access_log else "0"]
        if access_log:
            argv += ["--access-log", "-"]
        CommandLineInterface().run([*argv, "orchestrator.asgi:application"])


def first_account_message(first, base_url: str = "http://127.0.0.1:8000") -> str:
    """How to log in and point the SDK at this server; shown once, when the account is made."""
    return (
        f"Created the first account. Log in to the UI and admin at {base_url}/admin/ as {first.username!r} "
        f"with password {first.password!r}\n(change it with `python manage.py changepassword {first.username}`).\n"
        f"API token for the SDK, shown once:\n"
        f"  export RUNWAY_API_URL={base_url}/api RUNWAY_API_KEY={first.token}"
    )
