import shutil
import time

import pytest
import redis
from django.conf import settings

from tests.servers import free_port

needs_named = pytest.mark.skipif(shutil.which("named") is None,
                                 reason="named not installed (apt-get install bind9 bind9-utils)")


def wait_until(predicate, timeout=30.0, interval=0.1, message="condition"):
    """Wait for the system to get somewhere; the generous timeout is a deadlock guard, not a speed test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture(scope="session")
def system_env(django_db_setup, django_db_blocker):
    """Environment for dnsctl subprocesses: the tests' own database and Redis db, fast polls."""
    from django.db import connection

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL, "CONN_MAX_AGE": "300",
        "POLL_TIMEOUT": "0.5",
        "POLL_RETRY_INTERVAL": "0.2",
        "POLL_MAX_RETRIES": "15",
        "TARGET_MAX_RETRIES": "1",
        "TARGET_RETRY_INTERVAL": "0.2",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def minidns_address(system_env):
    from tests.processes import minidns

    host, port = "127.0.0.1", free_port()
    server = minidns(system_env, host, port)
    yield host, port
    server.stop()


@pytest.fixture(scope="session")
def worker(system_env):
    from tests.processes import celery_worker

    proc = celery_worker(system_env)
    yield proc
    proc.stop()
