"""No input makes the API answer 5xx: schemathesis generates requests, valid and invalid, for every
operation of /v2/schema, sends them as a member and as an admin, and checks every answer.

Path parameters are the ids of real objects (random ids only ever reach the 404 path), so bodies
are checked against a real zone, recordset, pool, TLD, blacklist, token and project. Each request
runs inside a savepoint that is rolled back, so a DELETE does not starve the cases after it.
Deterministic, so CI always sends the same requests; bench/fuzz_api.py runs a longer, random
campaign against gunicorn.
"""
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.fakes import one_of_everything

EXAMPLES = 20  # per operation and role; bench/fuzz_api.py runs many more


def _schema():
    """The OpenAPI document the API serves, called in-process (the app is the WSGI application)."""
    from drf_spectacular.generators import SchemaGenerator

    from dnsctl.wsgi import application

    loaded = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    loaded.app = application
    loaded.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES, deterministic=True)
    return loaded


schema = _schema()


@pytest.fixture(autouse=True)
def in_the_tests_transaction():
    """As Django's test client does: the end of a request must not close the test's connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db):
    return one_of_everything()


def call(case, world, role):
    for name in case.path_parameters or {}:
        if name in world["ids"]:
            case.path_parameters[name] = world["ids"][name]
    headers = {"X-Auth-Token": world["keys"][role]}
    if role == "admin":
        headers["X-Auth-All-Projects"] = "true"
    with transaction.atomic():
        case.call_and_validate(headers=headers, checks=[not_a_server_error])
        transaction.set_rollback(True)


# The world is made once per operation and every example runs in a savepoint rolled back after it.
ONCE_PER_OPERATION = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@schema.parametrize()
@ONCE_PER_OPERATION
def test_no_input_from_a_member_is_a_server_error(case, world):
    call(case, world, "member")


@schema.parametrize()
@ONCE_PER_OPERATION
def test_no_input_from_an_admin_is_a_server_error(case, world):
    call(case, world, "admin")
