"""Test settings: real PostgreSQL and a Redis db of the tests' own, unless the environment says otherwise."""
import os

os.environ.setdefault("DATABASE_URL", os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dnsctl"))
os.environ.setdefault("REDIS_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13"))
# dnsctl refuses to start without a secret key; the tests and the processes they start (which
# inherit the environment or import these settings) share this one.
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")

from dnsctl.settings import *  # noqa: E402,F401,F403

# The test process closes its connections so the test database can be dropped; the worker and
# MiniDNS subprocesses keep theirs (CONN_MAX_AGE in their environment), as in production.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", 0))  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files are not collected for the tests: whitenoise looks each one up when it is asked for.
WHITENOISE_AUTOREFRESH = True
