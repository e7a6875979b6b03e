"""Check 17: the migrations match the models, and run forward, back to zero and forward again.

`makemigrations --check --dry-run` finds nothing to write. Then, on a scratch database
of each kind (a PostgreSQL database created on the local server and dropped after; a
SQLite file in a temporary RUNWAY_HOME), as subprocesses of `manage.py`: migrate a fresh
empty database to the latest migrations, unapply every app (`migrate <app> zero`, the
apps that depend on others first), and migrate forward again. After zero, no table but
django_migrations may be left and no migration recorded; the schema migrated the second
time (tables, columns, indexes and constraints) must be the one migrated the first time.

Run directly as `python -m tests.reliability.test_migrations schema|zero` it is the
helper the test starts in the scratch database's environment.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO_ROOT = str(Path(__file__).resolve().parents[2])  # not from tests.conftest: the helper runs without it

PG_SERVER = os.environ.get("RUNWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


def test_the_models_have_no_changes_missing_from_the_migrations(tmp_path):
    done = _manage(_sqlite_env(tmp_path), "makemigrations", "--check", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes detected" in done.stdout


def test_migrations_reverse_to_zero_and_apply_again_on_sqlite(tmp_path):
    _round_trip(_sqlite_env(tmp_path))


def test_migrations_reverse_to_zero_and_apply_again_on_postgresql(tmp_path):
    import psycopg

    name = f"runway_migrations_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        pytest.fail(f"no PostgreSQL server at {PG_SERVER} ({error}); `scripts/ensure-postgres` starts one")
    try:
        _round_trip({**_sqlite_env(tmp_path), "RUNWAY_DATABASE_URL": f"{PG_SERVER}/{name}"})
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _round_trip(env: dict[str, str]) -> None:
    _ok(_manage(env, "migrate", "--no-input"))
    first = _schema(env)
    assert {"runs_flowrun", "runs_taskrunstate", "deployments_deployment"} <= set(first["tables"]), first["tables"]
    assert first["applied"], "no migration was recorded as applied"

    zeroed = json.loads(_ok(_helper(env, "zero")).stdout.splitlines()[-1])

    assert zeroed["order"], "no app was unapplied"
    empty = _schema(env)
    assert empty["applied"] == [], f"still applied after zero: {empty['applied']}"
    assert set(empty["tables"]) == {"django_migrations"}, f"left after zero: {sorted(set(empty['tables']) - {'django_migrations'})}"

    _ok(_manage(env, "migrate", "--no-input"))
    assert _schema(env) == first, "the schema migrated again differs from the first one"


# --- subprocesses ---------------------------------------------------------------------------
def _sqlite_env(tmp_path) -> dict[str, str]:
    """The environment of a process on a fresh SQLite database under its own RUNWAY_HOME."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key not in ("RUNWAY_DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    return {**env, "RUNWAY_HOME": str(home)}


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], check=False, cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def _helper(env: dict[str, str], command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.reliability.test_migrations", command], check=False, cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{' '.join(done.args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def _schema(env: dict[str, str]) -> dict:
    return json.loads(_ok(_helper(env, "schema")).stdout.splitlines()[-1])


# --- the helper, in the scratch database's process -----------------------------------------------
def _describe_schema() -> dict:
    """Tables, their columns, indexes and constraints, and the migrations recorded as applied."""
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    tables = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            columns = [(c.name, c.type_code if connection.vendor == "postgresql" else str(c.type_code), c.null_ok)
                       for c in connection.introspection.get_table_description(cursor, table)]  # fmt: skip
            constraints = connection.introspection.get_constraints(cursor, table)
            shapes = sorted(
                json.dumps({k: v for k, v in spec.items() if k != "definition"}, sort_keys=True, default=str)
                for spec in constraints.values()
            )  # names can be generated, so the shapes are compared: columns, kind, uniqueness, order
            tables[table] = {"columns": sorted(map(list, columns)), "constraints": shapes}
    applied = sorted(f"{app}.{name}" for app, name in MigrationRecorder(connection).applied_migrations())
    return {"tables": tables, "applied": applied}


def _zero_every_app() -> dict:
    """`migrate <app> zero` for every app with migrations: those whose first migration comes last
    in the plan first (they depend on the others), then the apps they depended on."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.recorder import MigrationRecorder

    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    plan = [node for leaf in graph.leaf_nodes() for node in graph.forwards_plan(leaf)]
    first_seen: dict[str, int] = {}
    for position, (app, _) in enumerate(plan):
        first_seen.setdefault(app, position)
    order = sorted(first_seen, key=first_seen.get, reverse=True)
    for app in order:
        call_command("migrate", app, "zero", interactive=False, verbosity=0)
        left = [name for label, name in MigrationRecorder(connection).applied_migrations() if label == app]
        if left:
            raise SystemExit(f"`migrate {app} zero` left {left} applied")
    return {"order": order}


if __name__ == "__main__":
    from sdk.client.database import setup_django

    setup_django()
    action = {"schema": _describe_schema, "zero": _zero_every_app}[sys.argv[1]]
    print(json.dumps(action(), default=str))
