"""dnsctl settings: everything comes from the environment (12-factor) with local defaults."""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# --- Secret key: signs sessions, CSRF tokens and password-reset links, so there is no default
# outside DEBUG. SECRET_KEY, or SECRET_KEY_FILE naming a file that holds it (Docker secrets), or
# else the key bin/start made and keeps in RUN_DIR (.run/secret-key), so that `manage.py …` in
# the same checkout signs with the same key.
try:
    SECRET_KEY = environ.FileAwareEnv().str("SECRET_KEY", default="").strip()
except OSError as exc:
    raise ImproperlyConfigured(f"SECRET_KEY_FILE cannot be read: {exc}") from exc
_kept_key = Path(env("RUN_DIR", default=str(BASE_DIR / ".run"))) / "secret-key"
if not SECRET_KEY and _kept_key.is_file():
    SECRET_KEY = _kept_key.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random string, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, or SECRET_KEY_FILE to a "
            "file holding one, in the environment or in .env (bin/start keeps one in .run/secret-key).")
    SECRET_KEY = "debug-only-insecure-key"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # its abstract token model; its own AuthToken is swapped for zones.ApiToken (KNOX_TOKEN_MODEL)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served with the rest of the static files
    "zones",
    "workers",  # no models: fills zones.backends (pool validation) when the apps are ready
]

MIDDLEWARE = [
    "dnsctl.middleware.RequestBodyLimit",  # first: nothing may read a body before it is measured
    "dnsctl.middleware.QuietConnectionCheck",  # the kept connection's health check, without a SELECT 1 if it may
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # the admin's and /v2/docs' static files, DEBUG or not
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
# Every process keeps its connections (one per thread) for CONN_MAX_AGE seconds; with health
# checks, one broken by a PostgreSQL restart is replaced at the next request or task, not used.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"

# INFO is for what a person acts on: Celery's line for every task received, succeeded or retried
# and beat's for every tick it sends are routine, logged at LOG_ROUTINE_LEVEL (dnsctl/logs.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"routine": {"()": "dnsctl.logs.Routine", "level": env("LOG_ROUTINE_LEVEL", default="DEBUG")}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {name: {"filters": ["routine"]} for name in (
        "celery.app.trace", "celery.worker.strategy", "celery.worker.request", "celery.beat")},
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "zones.api.auth.XAuthTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": ["zones.api.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "zones.api.errors.designate_exception_handler",
    # --- request limits: per-token write rate (zones/api/throttling.py)
    "DEFAULT_THROTTLE_CLASSES": ["zones.api.throttling.WriteRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"write": env("API_WRITE_RATE", default="1200/min") or None},
}
# API tokens: only a SHA-512 digest of each key is stored (zones.ApiToken, django-rest-knox's
# digest). A new token lives API_TOKEN_TTL s (0 = forever) unless its maker asks for less, or more up
# to API_TOKEN_MAX_TTL s (0 = no maximum); a user holds at most API_TOKEN_LIMIT_PER_USER live tokens.
API_TOKEN_TTL = env.int("API_TOKEN_TTL", default=90 * 24 * 3600)
API_TOKEN_MAX_TTL = env.int("API_TOKEN_MAX_TTL", default=365 * 24 * 3600)
API_TOKEN_LIMIT_PER_USER = env.int("API_TOKEN_LIMIT_PER_USER", default=100)
# A token found by its key is cached (CACHE_URL) this many seconds, so calls do not each query it;
# revoking it or changing its user or membership drops the entry at once. 0 = always ask the database.
API_TOKEN_CACHE_SECONDS = env.int("API_TOKEN_CACHE_SECONDS", default=10)
KNOX_TOKEN_MODEL = "zones.ApiToken"
MIGRATION_MODULES = {"knox": None}  # knox's migrations would only make a table for its swapped-out model
SPECTACULAR_SETTINGS = {
    "TITLE": "dnsctl API",
    "DESCRIPTION": "DNS-as-a-Service: zones and recordsets in the shapes of the Designate v2 API.",
    "VERSION": "2.0",
    # /v2/docs loads Swagger UI from our static files: no third-party script runs on our origin.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Celery (Redis is broker and result backend: chords need the result backend) ------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
# Celery's Django fixup closes the thread's database connection before and after every task (a
# new PostgreSQL backend each time) unless this is set; it only counts to it, and dnsctl/celery.py
# handles connections around tasks as Django does around requests (CONN_MAX_AGE).
CELERY_DB_REUSE_MAX = 1 << 62
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
# Celery gives up on the result backend after 20 reconnects (about 20 s of Redis outage) and the
# process can then send no task until restarted: keep retrying, a worker has nothing better to do.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": None, "interval_start": 0, "interval_step": 1, "interval_max": 5},
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Every task's time limits: at the soft one the task gets SoftTimeLimitExceeded (the pipeline's tasks
# record it as a failure and retry), at the hard one its process is killed (the chord's error path then
# records ERROR). target_batch has its own, from TARGET_TIMEOUT. Celery enforces them in prefork and
# solo workers only; a threads worker (-P threads) relies on every call's own timeout.
CELERY_TASK_SOFT_TIME_LIMIT = env.float("TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.float("TASK_TIME_LIMIT", default=180)
# Beat's scheduler also writes a heartbeat for /health (workers/heartbeat.py), at least every 5 s.
CELERY_BEAT_SCHEDULER = "workers.heartbeat:BeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 5

# --- Coordination (tooz) ----------------------------------------------------------------------
COORDINATION_URL = env("COORDINATION_URL", default=REDIS_URL)

# --- Request limits and TLS deployments -------------------------------------------------------
# Bodies larger than this are a 413 before anything reads them (dnsctl/middleware.py); zone-file
# imports get their own limit (a 100,000-record zone file is ~2.5 MB). Django's own check, on
# request.body and form posts, is set to the larger of the two so that it is never the one that
# answers: the middleware does, per path, in the API's error shape.
API_MAX_BODY_SIZE = env.int("API_MAX_BODY_SIZE", default=1024 * 1024)
IMPORT_MAX_BODY_SIZE = env.int("IMPORT_MAX_BODY_SIZE", default=16 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_SIZE, IMPORT_MAX_BODY_SIZE)
# Writes per token (API_WRITE_RATE, DRF's "N/s|min|hour|day", empty = no limit) are counted in the
# cache, which every web worker shares; admins are exempt unless API_THROTTLE_ADMINS.
API_THROTTLE_ADMINS = env.bool("API_THROTTLE_ADMINS", default=False)
CACHES = {"default": env.cache_url("CACHE_URL", default=REDIS_URL)}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "dnsctl.cache.RedisCache"  # the same, reusing its Redis clients
    # A write waits at most this long for a stalled Redis (the throttle then lets it through).
    CACHES["default"].setdefault("OPTIONS", {}).update(socket_connect_timeout=1, socket_timeout=1)
# Behind a TLS-terminating proxy (README "Deploying behind TLS"): secure cookies, the origins the
# admin's forms come from, the header the proxy sets for https (opt-in: only a proxy that always
# sets or strips it may be trusted), and HSTS.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
if env("SECURE_PROXY_SSL_HEADER", default=""):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + env("SECURE_PROXY_SSL_HEADER").upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]  # load balancers and Prometheus call them over plain http
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# --- dnsctl ------------------------------------------------------------------------------------
DNSCTL = {
    # SOA polling after NOTIFY: each poll waits POLL_TIMEOUT s for an answer; a nameserver that is
    # behind is asked again after POLL_RETRY_INTERVAL s, doubling up to POLL_RETRY_MAX_INTERVAL, at
    # most POLL_MAX_RETRIES times (by default 35 s of waits in all: the first retries come soon, for a
    # small zone's transfer takes milliseconds). Polls while MiniDNS sees the nameserver transfer the
    # zone's serial do not count (up to POLL_TRANSFER_MAX_WAIT s from the first poll); after its end
    # the waits start again.
    "POLL_TIMEOUT": env.float("POLL_TIMEOUT", default=2.0),
    "POLL_RETRY_INTERVAL": env.float("POLL_RETRY_INTERVAL", default=0.05),
    "POLL_RETRY_MAX_INTERVAL": env.float("POLL_RETRY_MAX_INTERVAL", default=2.0),
    "POLL_MAX_RETRIES": env.int("POLL_MAX_RETRIES", default=22),
    # The first poll comes POLL_DELAY s after the NOTIFY: an idle BIND9 has asked MiniDNS for the SOA
    # and taken the IXFR 10-25 ms after it, so a poll at once found the old serial and the change
    # waited for the next one (0.05 s later, and a message more).
    "POLL_DELAY": env.float("POLL_DELAY", default=0.03),
    "POLL_TRANSFER_MAX_WAIT": env.float("POLL_TRANSFER_MAX_WAIT", default=120.0),
    # A nameserver that asked MiniDNS for the zone's SOA at the serial this many seconds ago is about to
    # transfer it (a big zone's SOA answer may be slow while MiniDNS renders it): its polls do not count.
    "POLL_SOA_ASKED_WINDOW": env.float("POLL_SOA_ASKED_WINDOW", default=15.0),
    # A target action that fails is retried this many times, this many seconds apart.
    "TARGET_MAX_RETRIES": env.int("TARGET_MAX_RETRIES", default=3),
    "TARGET_RETRY_INTERVAL": env.float("TARGET_RETRY_INTERVAL", default=1.0),
    # The longest one attempt of a batch on one target may take (its soft time limit; the hard one is
    # 30 s later), and how long it waits for an older change of the same zones on that target to finish.
    "TARGET_TIMEOUT": env.float("TARGET_TIMEOUT", default=30.0),
    # NOTIFYs and SOA queries a task sends to one nameserver at once (a batch's zones).
    "DNS_CONCURRENCY": env.int("DNS_CONCURRENCY", default=32),
    "NOTIFY_TIMEOUT": env.float("NOTIFY_TIMEOUT", default=1.0),
    "NOTIFY_RETRIES": env.int("NOTIFY_RETRIES", default=2),
    # Catalog pools: membership changes within this many seconds share one catalog serial and NOTIFY.
    "CATALOG_DEBOUNCE": env.float("CATALOG_DEBOUNCE", default=1.0),
    "DEFAULT_POOL": env("DEFAULT_POOL", default="default"),
    "DEFAULT_TTL": env.int("DEFAULT_TTL", default=3600),
    "MIN_TTL": env.int("MIN_TTL", default=1),
    "MAX_TTL": env.int("MAX_TTL", default=2147483647),
    # Bulk work (recovery, sync, target sync) travels in batches of this many zones per task.
    "BATCH_SIZE": env.int("BATCH_SIZE", default=200),
    # While changes keep coming (two commit less than 0.15 s apart), the pipeline's next kick waits this
    # many seconds, so that a steady stream travels in batches; a quiet system's change is pushed at once.
    "KICK_DELAY": env.float("KICK_DELAY", default=0.2),
    # Recovery: every RECOVERY_INTERVAL s, zones in ERROR and PENDING zones whose work is older
    # than the maximum propagation time get their action again, at most RECOVERY_MAX_ZONES a run.
    "RECOVERY_INTERVAL": env.float("RECOVERY_INTERVAL", default=120),
    "RECOVERY_MAX_ZONES": env.int("RECOVERY_MAX_ZONES", default=5000),
    # Periodic sync: every PERIODIC_SYNC_INTERVAL s (0 = off) re-push every lagging zone, the ACTIVE
    # zones changed in the last PERIODIC_SYNC_SECONDS s (default: two intervals), and a slice of the
    # rest, so that every ACTIVE zone is re-pushed once per PERIODIC_SYNC_FULL_PASS s (0 = never); a
    # zone that fails PERIODIC_SYNC_MAX_ATTEMPTS tries, PERIODIC_SYNC_RETRY_INTERVAL s apart, goes to ERROR.
    "PERIODIC_SYNC_INTERVAL": env.float("PERIODIC_SYNC_INTERVAL", default=1800),
    "PERIODIC_SYNC_SECONDS": env.int("PERIODIC_SYNC_SECONDS", default=None),
    "PERIODIC_SYNC_FULL_PASS": env.int("PERIODIC_SYNC_FULL_PASS", default=24 * 3600),
    "PERIODIC_SYNC_MAX_ATTEMPTS": env.int("PERIODIC_SYNC_MAX_ATTEMPTS", default=3),
    "PERIODIC_SYNC_RETRY_INTERVAL": env.float("PERIODIC_SYNC_RETRY_INTERVAL", default=30),
    # Purge: soft-deleted zones (kept so target sync can replay their deletes) are removed after
    # PURGE_AFTER s, PURGE_BATCH_SIZE at a time, every PURGE_INTERVAL s.
    "PURGE_AFTER": env.int("PURGE_AFTER", default=7 * 24 * 3600),
    "PURGE_INTERVAL": env.float("PURGE_INTERVAL", default=3600),
    "PURGE_BATCH_SIZE": env.int("PURGE_BATCH_SIZE", default=1000),
    # The change journal (IXFR and the audit trail), trimmed by the purge sweep: changes older than
    # JOURNAL_MAX_AGE s, and each zone's beyond its newest JOURNAL_MAX_CHANGES_PER_ZONE (0 = no limit).
    "JOURNAL_MAX_AGE": env.int("JOURNAL_MAX_AGE", default=90 * 24 * 3600),
    "JOURNAL_MAX_CHANGES_PER_ZONE": env.int("JOURNAL_MAX_CHANGES_PER_ZONE", default=1000),
    # Hosts or networks allowed to transfer every zone from MiniDNS; besides them, a zone transfers
    # only to its own pool's servers (targets' hosts, nameservers, also-notifies). Loopback is not special.
    "MINIDNS_ALLOW_XFR_FROM": env.list("MINIDNS_ALLOW_XFR_FROM", default=[]),
    # Zone-file imports waiting for a worker, per project: each holds up to IMPORT_MAX_BODY_SIZE bytes.
    "IMPORT_MAX_PENDING": env.int("IMPORT_MAX_PENDING", default=10),
    # Bytes of rendered zones MiniDNS keeps (estimated: wire form and index; a 100,000-record zone is
    # about 85 MB); the least recently used go first, the last one used always stays.
    "MINIDNS_CACHE_BYTES": env.int("MINIDNS_CACHE_BYTES", default=512 * 2**20),
    # MiniDNS's TCP: connections held at once (in all, per source address; beyond: cut at once),
    # seconds a connection may sit idle between queries, seconds a client may leave one message unread.
    "MINIDNS_TCP_MAX_CONNECTIONS": env.int("MINIDNS_TCP_MAX_CONNECTIONS", default=512),
    "MINIDNS_TCP_MAX_PER_ADDRESS": env.int("MINIDNS_TCP_MAX_PER_ADDRESS", default=64),
    "MINIDNS_TCP_IDLE_TIMEOUT": env.float("MINIDNS_TCP_IDLE_TIMEOUT", default=30.0),
    "MINIDNS_TCP_WRITE_TIMEOUT": env.float("MINIDNS_TCP_WRITE_TIMEOUT", default=10.0),
    # The UDP socket's receive buffer (bytes): a burst of packets waits there instead of being dropped.
    "MINIDNS_UDP_RCVBUF": env.int("MINIDNS_UDP_RCVBUF", default=4 * 1024 * 1024),
    # How long what MiniDNS saw of the secondaries' transfers stays in Redis (zones.transfers).
    "MINIDNS_TRANSFER_TTL": env.int("MINIDNS_TRANSFER_TTL", default=3600),
    # Import and export tasks (and exports' files) that ended more than ZONE_TASKS_MAX_AGE s ago are
    # removed by the purge sweep (0 = kept).
    "ZONE_TASKS_MAX_AGE": env.int("ZONE_TASKS_MAX_AGE", default=7 * 24 * 3600),
}

# --- Quotas: each project's defaults (Designate's resources; -1 = unlimited). Admins change one
# project's with PATCH /v2/quotas/{project_id}. Sized for a DNS service, not Designate's 10 zones and
# 500 records: a tenant with a 100,000-record zone is normal.
QUOTAS = {
    "zones": env.int("QUOTA_ZONES", default=1000),  # live zones per project
    "zone_recordsets": env.int("QUOTA_ZONE_RECORDSETS", default=200_000),  # per zone, SOA and apex NS not counted
    "zone_records": env.int("QUOTA_ZONE_RECORDS", default=500_000),  # records per zone, all its recordsets together
    "recordset_records": env.int("QUOTA_RECORDSET_RECORDS", default=100),  # records in one recordset (BIND9 takes at most 100)
    "api_export_size": env.int("QUOTA_API_EXPORT_SIZE", default=500_000),  # records in one zone export
}

# --- Periodic work: beat fires on every node; a tooz lock and PeriodicRun make one node run it.
# A tick older than its interval is dropped (expires), so an outage doesn't leave a pile of them.
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": interval, "options": {"expires": interval}}
    for name, task, interval in [
        ("recovery", "workers.tasks.recover", DNSCTL["RECOVERY_INTERVAL"]),
        ("periodic-sync", "workers.tasks.periodic_sync", DNSCTL["PERIODIC_SYNC_INTERVAL"]),
        ("purge", "workers.tasks.purge", DNSCTL["PURGE_INTERVAL"]),
    ]
    if interval > 0
}

# --- events and exists
# Zone events go to a Redis Stream (EVENTS_URL, default REDIS_URL) that consumers read with
# consumer groups. Create/update/delete wait in the outbox table until the relay (a beat task every
# EVENTS_RELAY_INTERVAL s) has published them; producers (`manage.py producer`) emit one exists event
# per live zone every EXISTS_INTERVAL s, EXISTS_BATCH_SIZE zones per query.
EVENTS = {
    "URL": env("EVENTS_URL", default=REDIS_URL),
    "STREAM": env("EVENTS_STREAM", default="dnsctl:events"),
    "STREAM_RETENTION": env.int("EVENTS_STREAM_RETENTION", default=2 * 3600),
    "OUTBOX_RETENTION": env.int("EVENTS_OUTBOX_RETENTION", default=7 * 24 * 3600),
    "TRIM_INTERVAL": env.float("EVENTS_TRIM_INTERVAL", default=600),
    "RELAY_INTERVAL": env.float("EVENTS_RELAY_INTERVAL", default=1.0),
    "RELAY_BATCH_SIZE": env.int("EVENTS_RELAY_BATCH_SIZE", default=1000),
    "EXISTS_INTERVAL": env.float("EXISTS_INTERVAL", default=3600),
    "EXISTS_BATCH_SIZE": env.int("EXISTS_BATCH_SIZE", default=1000),
    "PRODUCER_GROUP": env("PRODUCER_GROUP", default="dnsctl-producers"),
    # How often a producer re-reads the group while sweeping (and sleeps when it has nothing to do).
    "PRODUCER_TICK": env.float("PRODUCER_TICK", default=0.5),
}
CELERY_BEAT_SCHEDULE.update({
    "events-relay": {"task": "workers.event_tasks.relay_events", "schedule": EVENTS["RELAY_INTERVAL"],
                     "options": {"expires": EVENTS["RELAY_INTERVAL"]}},
    "events-trim": {"task": "workers.event_tasks.trim_events", "schedule": EVENTS["TRIM_INTERVAL"],
                    "options": {"expires": EVENTS["TRIM_INTERVAL"]}},
})

# --- operations: GET /health and GET /metrics (README "Health", "Metrics")
HEALTH = {
    # Components whose failure makes /health answer 503 (every component is reported either way).
    "REQUIRED": env.list("HEALTH_REQUIRED", default=[
        "database", "broker", "result_backend", "workers", "beat", "minidns", "coordination"]),
    "TIMEOUT": env.float("HEALTH_TIMEOUT", default=0.7),  # the longest /health waits for its probes
    "PROBE_TIMEOUT": env.float("HEALTH_PROBE_TIMEOUT", default=0.5),  # each probe's socket timeout
    "CACHE_SECONDS": env.float("HEALTH_CACHE_SECONDS", default=1.0),  # one answer per process this long
    # Workers and beat write a heartbeat every HEARTBEAT_INTERVAL s; older than *_MAX_AGE s is down.
    "HEARTBEAT_INTERVAL": env.float("HEARTBEAT_INTERVAL", default=2.0),
    "WORKER_MAX_AGE": env.float("HEALTH_WORKER_MAX_AGE", default=10.0),
    "BEAT_MAX_AGE": env.float("HEALTH_BEAT_MAX_AGE", default=15.0),
    # Where the MiniDNS probe sends its SOA query (a MiniDNS bound to 0.0.0.0 is asked on 127.0.0.1).
    "MINIDNS_HOST": {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(env("MINIDNS_HOST", default="127.0.0.1"),
                                                          env("MINIDNS_HOST", default="127.0.0.1")),
    "MINIDNS_PORT": env.int("MINIDNS_PORT", default=5354),
}
METRICS = {
    "TOKEN": env("METRICS_TOKEN", default=""),  # set: /metrics needs "Authorization: Bearer <token>"
    "DB_CACHE_SECONDS": env.float("METRICS_DB_CACHE_SECONDS", default=5.0),  # database gauges reread at most this often
    "DB_TIMEOUT": env.float("METRICS_DB_TIMEOUT", default=3.0),  # statement timeout of those reads
}
