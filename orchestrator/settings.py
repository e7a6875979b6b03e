"""Django settings for Runway, built from `RUNWAY_*` environment variables.

Locally nothing needs setting: the database is SQLite under RUNWAY_HOME. In
production set RUNWAY_DATABASE_URL (PostgreSQL), RUNWAY_SECRET_KEY and
RUNWAY_ALLOWED_HOSTS. docs/configuration.md lists every variable.
"""
from __future__ import annotations

import secrets

import dj_database_url

from orchestrator.env import env_bool, env_float, env_list, env_str, runway_home

RUNWAY_HOME = runway_home()
RUNWAY_HOME.mkdir(parents=True, exist_ok=True)
BASE_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent


def _local_secret_key() -> str:
    """A per-home random key, so a local install is never shipped with a known secret."""
    path = RUNWAY_HOME / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY") or _local_secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "orchestrator.runs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
ASGI_APPLICATION = "orchestrator.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict:
    """SQLite under RUNWAY_HOME by default; RUNWAY_DATABASE_URL (postgresql://...) otherwise."""
    url = env_str("DATABASE_URL", f"sqlite:///{RUNWAY_HOME / 'runway.sqlite3'}")
    config = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            # IMMEDIATE takes the write lock when a transaction starts, so two writers
            # queue on busy_timeout instead of failing with "database is locked" mid-way.
            "transaction_mode": "IMMEDIATE",
            "timeout": env_float("SQLITE_TIMEOUT", 30.0),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        config["TEST"] = {"NAME": str(RUNWAY_HOME / "test-runway.sqlite3")}
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = RUNWAY_HOME / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"orchestrator": {"level": env_str("LOGGING_LEVEL", "INFO")}},
}
