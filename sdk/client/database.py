"""Preparing the orchestrator's database in process: Django set up, schema migrated on first use.

Checking for missing migrations compares the migration files on disk with the
`django_migrations` table: one query, instead of loading the migration graph on
every start. Concurrent first runs serialize on a lock file in RUNWAY_HOME.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


def setup_django() -> None:
    """Configure Django with Runway's settings unless the process already did."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def ensure_database() -> None:
    """Set up Django and apply any migrations the database lacks."""
    setup_django()
    if not _unapplied_migrations():
        return
    from django.conf import settings
    from django.core.management import call_command

    lock_path = Path(settings.RUNWAY_HOME) / "migrate.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _unapplied_migrations():
            call_command("migrate", interactive=False, verbosity=0)


def _unapplied_migrations() -> set[tuple[str, str]]:
    from django.apps import apps
    from django.db import DatabaseError, connection

    on_disk = set()
    for app in apps.get_app_configs():
        folder = Path(app.path) / "migrations"
        if folder.is_dir():
            on_disk |= {(app.label, f.stem) for f in folder.glob("[0-9]*.py")}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations")
            applied = set(cursor.fetchall())
    except DatabaseError:
        return on_disk
    return on_disk - applied
