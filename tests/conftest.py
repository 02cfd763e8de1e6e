import shutil
import time

import pytest
import redis
from django.conf import settings

from tests.servers import free_port

needs_named = pytest.mark.skipif(shutil.which("named") is None,
                                 reason="named not installed (apt-get install bind9 bind9-utils)")


@pytest.fixture(scope="session", autouse=True)
def flush_survives_a_deadlock():
    """pytest-django empties the database after a transactional test with one TRUNCATE of every table
    (here: of every table that holds a row). A session's Celery worker may still finish work the test
    started (a kick runs up to KICK_DELAY after its commit), and PostgreSQL may pick the TRUNCATE as a
    deadlock's victim: try it again."""
    from django.db import OperationalError
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return original(self, sql_list)
            except OperationalError as exc:
                if getattr(exc.__cause__, "pgcode", None) != "40P01" or attempt == 4:
                    raise
                time.sleep(0.2)

    original_sql_flush = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        """Only the tables that hold a row (CASCADE empties the tables that refer to them): TRUNCATE
        costs per table (all 30: 0.4 s on a loaded machine) and a test leaves most of them empty."""
        tables = sorted(tables)
        if tables and not reset_sequences:
            with self.connection.cursor() as cursor:
                cursor.execute(" UNION ALL ".join(f"(SELECT {i} FROM {self.quote_name(table)} LIMIT 1)"
                                                  for i, table in enumerate(tables)))
                tables, allow_cascade = [tables[i] for (i,) in cursor.fetchall()], True
            if not tables:
                return []
        return original_sql_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original
    DatabaseOperations.sql_flush = original_sql_flush


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
        "POLL_RETRY_MAX_INTERVAL": "0.4",
        "POLL_MAX_RETRIES": "15",
        "POLL_TRANSFER_MAX_WAIT": "20",  # the tests' transfers are small; keeps recovery's window short
        # Every test server transfers from 127.0.0.1, so one server's SOA query counts for all of them
        # (a stopped one too): its transfer starts milliseconds after the query here, not 15 s.
        "POLL_SOA_ASKED_WINDOW": "3",
        "TARGET_MAX_RETRIES": "1",
        "TARGET_RETRY_INTERVAL": "0.2",
        "LOG_LEVEL": "INFO",
        "LOG_ROUTINE_LEVEL": "INFO",  # tests read Celery's per-task and per-tick lines in the processes' logs
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


@pytest.fixture(scope="session")
def openstack_shell():
    """The real `openstack` CLI, one process for the session's commands (tests/openstack_shell.py)."""
    from tests.openstack_shell import OpenStackShell

    with OpenStackShell() as shell:
        yield shell


@pytest.fixture(scope="module")
def binds(minidns_address):
    """Two real BIND9 secondaries of MiniDNS for a module's tests (a test may replace one)."""
    from tests.servers.bind9 import Bind9Server

    servers = [Bind9Server(primary=minidns_address).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def eager(monkeypatch):
    """Tasks run in-process with the fake backend; a nameserver named like a fake target serves
    what that target has (the decisions only: test_integration.py proves the real pipeline)."""
    from dnsctl.celery import app as celery_app
    from tests.fakes import FakeBackend
    from workers import backends, dnsclient
    from zones.models import Zone
    from zones.services import pipeline

    monkeypatch.setitem(backends.BACKENDS, "fake", "tests.fakes.FakeBackend")
    monkeypatch.setitem(settings.DNSCTL, "TARGET_MAX_RETRIES", 0)
    monkeypatch.setitem(settings.DNSCTL, "POLL_MAX_RETRIES", 0)
    monkeypatch.setitem(settings.DNSCTL, "DNS_CONCURRENCY", 1)  # fake_soa reads the test's transaction
    old = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    # a kick another test left outstanding would keep this test's changes from theirs
    pipeline._kick_redis().delete(pipeline.KICK_KEY, pipeline.BUSY_KEY)
    FakeBackend.reset()

    def fake_soa(zone_name, host, port, timeout):
        if host == "unreachable":
            raise dnsclient.DNSClientError("timed out")
        zone = Zone.objects.filter(name=zone_name, deleted_at__isnull=True).first()
        return zone.serial if zone and zone_name in FakeBackend.zones.get(host, set()) else None

    monkeypatch.setattr(dnsclient, "query_soa_serial", fake_soa)
    monkeypatch.setattr(dnsclient, "send_notify", lambda *a, **k: 0)
    yield
    celery_app.conf.update(task_always_eager=old[0], task_eager_propagates=old[1])


@pytest.fixture
def admin_user(admin_user):
    """pytest-django's superuser, also an admin of the API (a role of its own since Django staff isn't)."""
    from zones import accounts

    return accounts.api_user(admin_user.username, "admin", accounts.Role.ADMIN)
