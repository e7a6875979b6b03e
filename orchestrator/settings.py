"""Django settings for Runway, built from `RUNWAY_*` environment variables.

Locally nothing needs setting: the database is SQLite under RUNWAY_HOME. In
production set RUNWAY_DATABASE_URL (PostgreSQL), RUNWAY_SECRET_KEY,
RUNWAY_ALLOWED_HOSTS and RUNWAY_HTTPS=true (docs/deployment.md);
docs/configuration.md lists every variable.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from orchestrator.env import env_bool, env_float, env_list, env_str, runway_home

RUNWAY_HOME = runway_home()
RUNWAY_HOME.mkdir(parents=True, exist_ok=True)
BASE_DIR = Path(__file__).resolve().parent.parent


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
    "channels",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "orchestrator.runs",
    "orchestrator.accounts",
    "orchestrator.limits",
    "orchestrator.deployments",
    "orchestrator.notifications",
    "orchestrator.secrets",
    "orchestrator.ui",
    "workers",  # commands that load a flow's code (deployment create); the orchestrator's apps never import the SDK
    "orchestrator.server",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
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
                "orchestrator.ui.context.navigation",
            ],
        },
    },
]


def _database() -> dict:
    """SQLite under RUNWAY_HOME by default; RUNWAY_DATABASE_URL (postgresql://...) otherwise."""
    url = env_str("DATABASE_URL", f"sqlite:///{RUNWAY_HOME / 'runway.sqlite3'}")
    config = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", True):
        # Pooled connections: many server processes and workers share the database's connection slots.
        config["CONN_MAX_AGE"] = 0
        # Health checks, with a pool: a connection the server closed meanwhile (a restart, a terminated
        # backend) is replaced when taken from the pool instead of failing the request that takes it.
        config["CONN_HEALTH_CHECKS"] = True
        size = int(env_float("DATABASE_POOL_SIZE", 20))
        config.setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": size, "timeout": 30}
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Django's backend, waiting for SQLite's write lock in short steps (orchestrator/sqlite_backend).
        config["ENGINE"] = "orchestrator.sqlite_backend"
        # The server's request threads are pooled (orchestrator/server/handler.py) and keep their
        # connection; the SDK's in-process client manages its own connections.
        config["CONN_MAX_AGE"] = 600
        config["OPTIONS"] = {
            # IMMEDIATE takes the write lock when a transaction starts, so two writers
            # queue for it (up to `timeout` s) instead of failing with "database is locked" mid-way.
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
STATIC_ROOT = RUNWAY_HOME / "staticfiles"  # for `collectstatic`; WhiteNoise warns if it is missing
STATIC_ROOT.mkdir(exist_ok=True)
# WhiteNoise serves static files from the apps and static/ directly: no collectstatic step.
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "ui:login"
LOGIN_REDIRECT_URL = "ui:dashboard"
LOGOUT_REDIRECT_URL = "ui:login"
# Messages in the session, not in a cookie: the admin shows a new API token once in a message.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- HTTPS and cookies: RUNWAY_HTTPS=true is the production switch (docs/deployment.md) ---
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(env_float("HSTS_SECONDS", 31536000)) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("BEHIND_PROXY", False):  # a TLS-terminating proxy sets X-Forwarded-Proto
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Request bodies above this many bytes are refused with 413 (a log batch of 500 lines fits easily).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env_float("MAX_REQUEST_BYTES", 5 * 1024 * 1024))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orchestrator.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # enforces CSRF on writes
    ],
    "DEFAULT_PERMISSION_CLASSES": ["orchestrator.api.permissions.TokenScopePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "orchestrator.api.filters.StrictOrdering",
    ],
    "DEFAULT_PAGINATION_CLASS": "orchestrator.api.pagination.Cursor",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["orchestrator.api.parsers.JSONWithoutNul"],
    "EXCEPTION_HANDLER": "orchestrator.api.errors.handle_exception",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Runway orchestration API",
    "DESCRIPTION": "Report and orchestrate flow runs and task runs: every state change goes through the rules engine.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several answers have a "status": one enum name per set of choices.
    "ENUM_NAME_OVERRIDES": {
        "SetStateStatusEnum": ["ACCEPT", "REJECT", "WAIT", "ABORT"],
        "ClaimStatusEnum": ["claimed", "held", "finished"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orchestrator.api.schema.add_error_responses",
        "orchestrator.api.schema.add_links",
        "orchestrator.api.schema.close_strict_bodies",
    ],
}

# Channels: one ASGI process serves HTTP and (for the live UI) websockets. Locally the layer is in
# memory; in production RUNWAY_CHANNEL_LAYER_URL=redis://host:6379/1 shares it between the server
# processes and the workers, whose state changes then nudge every open page (orchestrator/runs/events.py).
RUNWAY_CHANNEL_LAYER_URL = env_str("CHANNEL_LAYER_URL", "")
if RUNWAY_CHANNEL_LAYER_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [RUNWAY_CHANNEL_LAYER_URL]}}}  # fmt: skip
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Each open page reads what changed from the database this often (and at once when nudged).
RUNWAY_UI_LIVE_SECONDS = env_float("UI_LIVE_SECONDS", 1.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"orchestrator": {"level": env_str("LOGGING_LEVEL", "INFO")}},
}

# --- Celery (workers/celery.py reads every CELERY_* setting) ---------------------------------
# Locally an embedded broker needs no server: kombu's filesystem transport under RUNWAY_HOME.
# Production: RUNWAY_BROKER_URL=redis://host:6379/0 (or amqp://... for RabbitMQ).
CELERY_BROKER_URL = env_str("BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _BROKER_DIR = RUNWAY_HOME / "broker"
    (_BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (_BROKER_DIR / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,  # seconds between looks at the folder when it is empty
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis gives an unacknowledged message to another worker after this long. Runway never
    # parks a message for long (a run due later waits in the database, not as a Celery ETA),
    # so the default only has to outlast the longest task run.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_float("BROKER_VISIBILITY_TIMEOUT", 3600.0)}
CELERY_TASK_SERIALIZER = "json"  # nothing executable crosses the broker
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # results go through result storage; states through the orchestrator
CELERY_TASK_ACKS_LATE = True  # a message is acknowledged when its task run is recorded, not when received
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a worker killed mid-task leaves its message to be redelivered
CELERY_WORKER_CONSUMER = "workers.rate_limits:Consumer"  # paces @task(rate_limit=...) runs
# Celery's Django fixup closes every database connection (and, in a prefork pool, the whole
# PostgreSQL pool) before and after each task unless connections may be reused this many times.
# A new connection per task run cost more than the run's orchestration; instead each task
# starts with Django's own check (workers/tasks.py), which honours CONN_MAX_AGE and drops
# connections that failed.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # task runs may be long: do not hoard messages
CELERY_TASK_DEFAULT_QUEUE = env_str("DEFAULT_QUEUE", "runway")
# Beat's jobs (creating schedules' runs) and notification deliveries go to this queue, which every
# worker also consumes.
RUNWAY_SYSTEM_QUEUE = env_str("SYSTEM_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-system")
CELERY_TASK_ROUTES = {"runway.schedule_deployment_runs": {"queue": RUNWAY_SYSTEM_QUEUE}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits out a broker restart, however long
# A channel error is survived as a lost connection: RabbitMQ closes the channel of a message not
# acknowledged within its consumer timeout (30 min by default) -- a long task run, since messages
# are acknowledged when the run ends. The worker reconnects, the message comes back, and its claim
# is refused (the run's worker is alive); the run itself goes on.
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
# Publishing retries briefly; a flow sends again what the broker could not take (sdk/celery_runner.py).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"  # run log lines printed by tasks are not warnings

# --- Workers' liveness (orchestrator/runs/claims.py) -------------------------------------------
# A worker sends a heartbeat for each task run it runs every RUNWAY_HEARTBEAT_SECONDS; a run
# whose worker has been quiet for RUNWAY_HEARTBEAT_TIMEOUT is Crashed (and retried if it may
# be); workers and flows waiting on runs look for such runs every RUNWAY_SWEEP_SECONDS.
RUNWAY_HEARTBEAT_SECONDS = env_float("HEARTBEAT_SECONDS", 10.0)
RUNWAY_HEARTBEAT_TIMEOUT = env_float("HEARTBEAT_TIMEOUT", 30.0)
# A cancelled flow run's process stops it by itself (it looks every RUNWAY_CANCEL_CHECK_SECONDS);
# an agent kills a process still running RUNWAY_CANCEL_GRACE_SECONDS after it saw the run Cancelling.
RUNWAY_CANCEL_GRACE_SECONDS = env_float("CANCEL_GRACE_SECONDS", 10.0)
RUNWAY_SWEEP_SECONDS = env_float("SWEEP_SECONDS", 5.0)
# A task run that finds a tag's concurrency limit full waits this long before it asks again
# (a Celery worker does not hold a slot of its pool meanwhile: the message is sent again later).
RUNWAY_TASK_CONCURRENCY_WAIT_SECONDS = env_float("TASK_CONCURRENCY_WAIT_SECONDS", 2.0)
# A scheduled flow run not started this long after its scheduled time is Late.
RUNWAY_LATE_AFTER_SECONDS = env_float("LATE_AFTER_SECONDS", 15.0)

# --- Deployments: releasing due runs to agents, and schedules (docs/deployments.md) ------------
# Deploying copies a flow's code under RUNWAY_DEPLOYMENT_STORAGE. The API registers, and agents run,
# only code under RUNWAY_DEPLOYMENT_ROOTS (default: that storage), and only @flow functions of it
# (orchestrator/deployments/entrypoints.py).
RUNWAY_DEPLOYMENT_STORAGE = Path(env_str("DEPLOYMENT_STORAGE") or RUNWAY_HOME / "deployments").expanduser()
RUNWAY_DEPLOYMENT_ROOTS = [Path(root).expanduser() for root in env_list("DEPLOYMENT_ROOTS", [str(RUNWAY_DEPLOYMENT_STORAGE)])]
# Every worker looks for due runs of the queues it serves this often, and releases them.
RUNWAY_RELEASE_SECONDS = env_float("RELEASE_SECONDS", 1.0)
# A released run no agent has claimed after this long is sent again (the message is a wake-up;
# the database row is the truth, and a run is claimed once however many messages arrive).
RUNWAY_RELEASE_RESEND_SECONDS = env_float("RELEASE_RESEND_SECONDS", 300.0)
# Beat creates each schedule's runs this far ahead (at most RUNWAY_SCHEDULE_MAX_RUNS, and at
# least RUNWAY_SCHEDULE_MIN_RUNS however far off they are), every RUNWAY_SCHEDULE_SECONDS.
RUNWAY_SCHEDULE_HORIZON_SECONDS = env_float("SCHEDULE_HORIZON_SECONDS", 86400.0)
RUNWAY_SCHEDULE_MAX_RUNS = int(env_float("SCHEDULE_MAX_RUNS", 100))
RUNWAY_SCHEDULE_MIN_RUNS = int(env_float("SCHEDULE_MIN_RUNS", 3))
RUNWAY_SCHEDULE_SECONDS = env_float("SCHEDULE_SECONDS", 60.0)
# Catch-up after downtime: of a deployment's schedule-made runs whose time has passed, only the
# newest this many are run; older ones are Skipped (orchestrator/deployments/agents.py).
RUNWAY_SCHEDULE_CATCH_UP = int(env_float("SCHEDULE_CATCH_UP", 1))
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Notifications: rules, channels and deliveries (docs/notifications.md) -----------------------
# Messages link to the run's page under this address (the URL people open the UI at).
RUNWAY_UI_URL = env_str("UI_URL", "http://127.0.0.1:8000")
# Webhooks never reach loopback, private, link-local (cloud metadata) or other non-public addresses,
# unless their host is listed here: names (hooks.internal), *.suffix, IP addresses or networks (10.0.0.0/8).
RUNWAY_NOTIFICATION_ALLOWED_HOSTS = env_list("NOTIFICATION_ALLOWED_HOSTS", [])
# false: webhooks reach only the hosts listed above, public ones included.
RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS = env_bool("NOTIFICATION_ALLOW_PUBLIC_HOSTS", True)
# The modules whose functions rules on the "callable" channel may name (a module allows its
# submodules; "package.module:function" allows one function). Empty, no callable rule is saved or
# sent: whoever may write rules would otherwise choose any function the workers can import.
RUNWAY_NOTIFICATION_CALLABLES = env_list("NOTIFICATION_CALLABLES", [])
# A failed attempt is tried again after BACKOFF seconds, doubling each time up to BACKOFF_MAX,
# until MAX_ATTEMPTS attempts were made; then the delivery is recorded as failed.
RUNWAY_NOTIFICATION_MAX_ATTEMPTS = int(env_float("NOTIFICATION_MAX_ATTEMPTS", 5))
RUNWAY_NOTIFICATION_BACKOFF_SECONDS = env_float("NOTIFICATION_BACKOFF_SECONDS", 10.0)
RUNWAY_NOTIFICATION_BACKOFF_MAX_SECONDS = env_float("NOTIFICATION_BACKOFF_MAX_SECONDS", 600.0)
RUNWAY_NOTIFICATION_TIMEOUT_SECONDS = env_float("NOTIFICATION_TIMEOUT_SECONDS", 10.0)  # one HTTP or SMTP exchange
# A delivery still waiting this long after it was due (its message was lost) is sent to a worker again.
RUNWAY_NOTIFICATION_RESEND_SECONDS = env_float("NOTIFICATION_RESEND_SECONDS", 120.0)
# Each process reads the enabled rules at most this often (state changes are a hot path); a
# process that saves a rule sees it at once.
RUNWAY_NOTIFICATION_RULE_CACHE_SECONDS = env_float("NOTIFICATION_RULE_CACHE_SECONDS", 5.0)

# --- Secrets: values stored encrypted, read by name from flows (docs/secrets.md) ----------------
# Comma-separated Fernet keys: the first encrypts, every one decrypts (`secret reencrypt` after a
# rotation). Unset: a key derived from SECRET_KEY, so changing SECRET_KEY makes stored secrets unreadable.
RUNWAY_SECRETS_KEY = env_str("SECRETS_KEY", "")
# Email notifications go through Django's email backend: SMTP to RUNWAY_EMAIL_HOST:RUNWAY_EMAIL_PORT.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env_float("EMAIL_PORT", 25))
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = RUNWAY_NOTIFICATION_TIMEOUT_SECONDS
DEFAULT_FROM_EMAIL = SERVER_EMAIL = env_str("EMAIL_FROM", "runway@localhost")
