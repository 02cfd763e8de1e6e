"""PowerDNSBackend against a real pdns_server (gsqlite3, secondary) pulling from the tiny dnspython primary."""
import logging
import time

import dns.rcode
import pytest

from tests.conftest_servers import primary, wait_for_serial, zone  # noqa: F401
from tests.conftest_servers import at_once, check_bad_options, check_create, check_delete, check_notify, new_zones
from tests.conftest_servers import check_has_zone
from tests.servers import free_port
from tests.servers.pdns import PdnsServer, needs_pdns
from workers.backends import BackendError
from workers.backends.pdns import PowerDNSBackend
from workers.dnsclient import query_soa_serial

pytestmark = [needs_pdns]


@pytest.fixture(scope="module")
def pdns():
    with PdnsServer() as server:
        yield server


@pytest.fixture
def backend(pdns, primary):
    return PowerDNSBackend("pdns-test", pdns.backend_options, [primary.address])


def test_create_serves_the_primary_serial_and_repeats_are_noops(pdns, backend, zone):
    check_create(pdns, backend, zone)
    assert pdns.api(f"zones/{zone}") == 200


def test_notify_from_the_primary_address_brings_new_serial(pdns, primary, backend, zone):
    check_notify(pdns, primary, backend, zone, timeout=10)  # PowerDNS looks at NOTIFYs once a second


def test_delete_refuses_and_repeats_are_noops(pdns, backend, zone):
    check_delete(pdns, backend, zone, lambda name: pdns.api(f"zones/{name}") != 404)


def test_has_zone_asks_the_api_not_dns(pdns, backend, zone):
    check_has_zone(pdns, backend, zone)


def test_update_fixes_masters_and_creates_missing(pdns, primary, zone):
    dead = ("127.0.0.1", free_port())
    PowerDNSBackend("pdns-test", pdns.backend_options, [dead]).update_zone(zone)  # missing: created
    assert pdns.api(f"zones/{zone}") == 200
    assert query_soa_serial(zone, pdns.host, pdns.port) is None
    PowerDNSBackend("pdns-test", pdns.backend_options, [primary.address]).update_zone(zone)
    assert wait_for_serial(pdns, zone, 1) == 1


def test_apply_many_zones(pdns, primary, backend):
    names = new_zones(primary, 40, serial=5, prefix="bulk")
    results = backend.apply([("CREATE", n) for n in names] + [("DELETE", "never-there.example.test.")])
    assert set(results) == {*names, "never-there.example.test."} and set(results.values()) == {None}
    assert all(wait_for_serial(pdns, n, 5, timeout=15) == 5 for n in names)
    results = backend.apply([("DELETE", n) for n in names])
    assert set(results.values()) == {None}
    assert all(wait_for_serial(pdns, n, None) is None for n in names)


def test_wrong_key_names_target_and_server_message(pdns, primary, zone, caplog):
    caplog.set_level(logging.DEBUG)
    options = {**pdns.backend_options, "api_key": "Xq7-wrong-api-key"}
    backend = PowerDNSBackend("pdns-wrong-key", options, [primary.address])
    with pytest.raises(BackendError) as excinfo:
        backend.create_zone(zone)
    message = str(excinfo.value)
    assert message.startswith(f"pdns target 'pdns-wrong-key' ({pdns.api_url}): POST zones")
    assert "HTTP 401" in message and "Unauthorized" in message  # PowerDNS's own words
    for secret in ("Xq7-wrong-api-key", pdns.api_key):
        assert secret not in message and secret not in caplog.text


def test_nothing_listening_names_target(primary, zone):
    backend = PowerDNSBackend("pdns-down", {"api_url": f"http://127.0.0.1:{free_port(udp_too=False)}",
                                            "api_key": "k", "timeout": 2}, [primary.address])
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"pdns target 'pdns-down' .*Connection refused"):
        backend.delete_zone(zone)
    with pytest.raises(BackendError, match=r"pdns target 'pdns-down' .*Connection refused"):
        backend.has_zone(zone)  # cannot tell is not "absent"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("options, match", [
    ({"api_key": "k"}, "api_url must be an http"),
    ({"api_url": "ftp://x", "api_key": "k"}, "api_url must be an http"),
    ({"api_url": "http://127.0.0.1:8081"}, "api_key is required"),
    ({"api_url": "http://127.0.0.1:8081", "api_key": "k", "timeout": "x"}, "timeout must be a number"),
])
def test_bad_options(options, match):
    check_bad_options("pdns", options, match)


def test_notify_only_from_the_primary_address(pdns, primary, backend, zone):
    """PowerDNS takes NOTIFY only from the zone's masters: notify_source must be MiniDNS's address."""
    check_notify(pdns, primary, backend, zone, source=primary.host, turned_away=("127.0.0.2", dns.rcode.REFUSED),
                 timeout=10)


def test_concurrent_writes_are_serialised_by_the_lock(pdns, primary):
    """PowerDNS on SQLite fails concurrent writes ("database is locked"); the lock prevents that."""
    names = new_zones(primary, 8, serial=4, prefix="par")
    backends = [PowerDNSBackend(f"pdns-{i}", pdns.backend_options, [primary.address]) for i in range(8)]
    at_once(PowerDNSBackend.create_zone, backends, names)
    assert all(wait_for_serial(pdns, n, 4, timeout=15) == 4 for n in names)
    at_once(PowerDNSBackend.delete_zone, backends, names)
    assert all(pdns.api(f"zones/{n}") == 404 for n in names)
