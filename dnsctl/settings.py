"""dnsctl settings: everything comes from the environment (12-factor) with local defaults."""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "zones",
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

ROOT_URLCONF = "dnsctl.urls"
WSGI_APPLICATION = "dnsctl.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The zero-setup default is shared by web, worker, beat and MiniDNS processes:
    # WAL lets readers run beside the writer, IMMEDIATE + a timeout makes writers queue, not fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "zones.api.auth.XAuthTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "zones.api.errors.designate_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "dnsctl API",
    "DESCRIPTION": "DNS-as-a-Service: zones and recordsets in the shapes of the Designate v2 API.",
    "VERSION": "2.0",
}

# --- Celery (Redis is broker and result backend: chords need the result backend) ------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_ACKS_LATE = True  # every task is idempotent: a lost worker means a redelivery
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # Later stages of a zone's pipeline run before new zones start (0 is the highest priority on
    # Redis), so a burst finishes zone by zone instead of every zone at the end.
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
}
CELERY_TASK_DEFAULT_PRIORITY = 5
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Coordination (tooz) ----------------------------------------------------------------------
COORDINATION_URL = env("COORDINATION_URL", default=REDIS_URL)

# --- dnsctl ------------------------------------------------------------------------------------
DNSCTL = {
    # SOA polling after NOTIFY: each poll waits POLL_TIMEOUT s for an answer; a nameserver
    # that is behind is asked again every POLL_RETRY_INTERVAL s, at most POLL_MAX_RETRIES times.
    "POLL_TIMEOUT": env.float("POLL_TIMEOUT", default=2.0),
    "POLL_RETRY_INTERVAL": env.float("POLL_RETRY_INTERVAL", default=0.25),
    "POLL_MAX_RETRIES": env.int("POLL_MAX_RETRIES", default=40),
    "POLL_DELAY": env.float("POLL_DELAY", default=0.0),
    # A target action that fails is retried this many times, this many seconds apart.
    "TARGET_MAX_RETRIES": env.int("TARGET_MAX_RETRIES", default=3),
    "TARGET_RETRY_INTERVAL": env.float("TARGET_RETRY_INTERVAL", default=1.0),
    "NOTIFY_TIMEOUT": env.float("NOTIFY_TIMEOUT", default=1.0),
    "NOTIFY_RETRIES": env.int("NOTIFY_RETRIES", default=2),
    "DEFAULT_POOL": env("DEFAULT_POOL", default="default"),
    "DEFAULT_TTL": env.int("DEFAULT_TTL", default=3600),
    "MIN_TTL": env.int("MIN_TTL", default=1),
    "MAX_TTL": env.int("MAX_TTL", default=2147483647),
    "MAX_RECORDSETS_PER_ZONE": env.int("MAX_RECORDSETS_PER_ZONE", default=5000),
    # Extra hosts (besides loopback and the pools' targets) allowed to AXFR from MiniDNS.
    "MINIDNS_ALLOW_XFR_FROM": env.list("MINIDNS_ALLOW_XFR_FROM", default=[]),
}
