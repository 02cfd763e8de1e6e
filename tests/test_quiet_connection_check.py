"""The kept connection's health check (CONN_HEALTH_CHECKS) without its SELECT 1 when the socket is
quiet (dnsctl.middleware.QuietConnectionCheck), and Django's own check whenever it is not."""
import time

import psycopg2
import pytest
from django.db import connection, transaction
from django.test import RequestFactory

from dnsctl.middleware import QuietConnectionCheck

pytestmark = pytest.mark.django_db(transaction=True)  # the connection idle in autocommit, as between requests


def request_start() -> bool:
    """A request's start on a kept connection (Django's request_started leaves health_check_done False);
    whether the middleware found the check done."""
    connection.health_check_done = False
    seen = {}

    def view(request):
        seen["done"] = connection.health_check_done
        with connection.cursor() as cursor:  # the request's first query: Django checks here unless done
            cursor.execute("SELECT pg_backend_pid()")
            seen["pid"] = cursor.fetchone()[0]

    QuietConnectionCheck(view)(RequestFactory().get("/v2/zones"))
    return seen["done"], seen["pid"]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_sound_kept_connection_needs_no_select_1():
    assert connection.health_check_enabled
    pid = backend_pid()
    assert request_start() == (True, pid)


def test_a_connection_the_server_ended_is_checked_and_replaced():
    pid = backend_pid()
    settings = connection.settings_dict
    with psycopg2.connect(dbname=settings["NAME"], user=settings["USER"] or "postgres",
                          host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432) as other:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0]
    time.sleep(0.2)  # the server's goodbye reaches the socket
    done, new_pid = request_start()
    assert not done, "the middleware passed a connection whose server had ended it"
    assert new_pid != pid  # Django's SELECT 1 failed and it connected again: the request's query worked


def test_a_connection_inside_a_transaction_is_left_to_django():
    with transaction.atomic():
        backend_pid()
        assert request_start()[0] is False
