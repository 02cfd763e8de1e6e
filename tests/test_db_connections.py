"""Database connections are kept across tasks and requests (CONN_MAX_AGE), not opened per task."""
import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.conf import settings
from django.db import connection

from dnsctl.celery import app as celery_app
from tests.conftest import wait_until
from workers.event_tasks import trim_events

OTHERS = """SELECT pid, backend_start, query FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()"""


def test_configuration_is_effective():
    assert DjangoWorkerFixup(celery_app).db_reuse_max >= 1 << 40  # the fixup never closes them itself
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def _worker_backends():
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")  # inside the test's transaction it is read once
        cur.execute(OTHERS)
        # trim_events' last statement: the COMMIT of its sweeps' DELETE (nothing else of the session commits)
        return {(pid, started) for pid, started, query in cur.fetchall() if query == "COMMIT"}


def _run_tasks(worker, count):
    done = worker.log_text().count("workers.event_tasks.trim_events[")
    for _ in range(count):
        trim_events.delay()
    wait_until(lambda: worker.log_text().count("workers.event_tasks.trim_events[") >= done + 2 * count,
               timeout=30, message=f"{count} trim_events received and done")


@pytest.mark.django_db
def test_worker_threads_keep_their_connection_across_tasks(worker):
    """The same PostgreSQL backends serve later tasks: before, each task opened and closed its own."""
    _run_tasks(worker, 20)
    first = _worker_backends()
    assert first, "no idle connection of the worker's tasks left: they are closed after each task"
    _run_tasks(worker, 20)
    with connection.cursor() as cur:
        cur.execute(OTHERS)
        later = {(pid, started) for pid, started, _ in cur.fetchall()}
    assert first <= later


@pytest.mark.django_db
def test_a_task_after_postgresql_ended_the_threads_connections_gets_new_ones(worker):
    """The kept connection's check skips its SELECT 1 only when the socket is quiet (dnsctl.dbcheck):
    one the server ended right after its last task is noticed and replaced, and no task fails on it."""
    _run_tasks(worker, 20)
    ended = _worker_backends()
    assert ended
    with connection.cursor() as cur:
        for pid, _ in ended:
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_until(lambda: not _worker_backends() & ended, timeout=10, message="the backends gone")
    failures = worker.log_text().count("raised unexpected")
    _run_tasks(worker, 20)
    assert worker.log_text().count("raised unexpected") == failures, worker.log_text()[-3000:]
    later = _worker_backends()
    assert later and not later & ended
