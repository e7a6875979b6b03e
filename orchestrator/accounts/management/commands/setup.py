"""`python manage.py setup`: prepare a local instance (migrate, first account and token), idempotently."""
from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from orchestrator.accounts.services import account_bootstrap
from orchestrator.server.management.commands.server import first_account_message


class Command(BaseCommand):
    help = "Apply migrations and, on an instance without users, create the first account and an API token."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        first = account_bootstrap()
        if first is None:
            self.stdout.write("Database migrated; accounts already exist (add one with `python manage.py createsuperuser`).")
        else:
            self.stdout.write(first_account_message(first))
        self.stdout.write("Start the server with `python manage.py server`, then open http://127.0.0.1:8000/")
