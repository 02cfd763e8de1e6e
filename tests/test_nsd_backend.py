"""NsdBackend against a real NSD (secondary) pulling from the tiny dnspython primary."""
import time

import dns.rcode
import pytest

from tests.conftest_servers import primary, wait_for_serial, zone  # noqa: F401
from tests.conftest_servers import check_bad_options, check_create, check_delete, check_notify, new_zones
from tests.conftest_servers import check_has_zone
from tests.servers.nsd import NsdServer, needs_nsd
from workers.backends import BackendError
from workers.backends.nsd import NsdBackend

pytestmark = [needs_nsd]


@pytest.fixture(scope="module")
def nsd(primary):
    with NsdServer(masters=[primary.address]) as server:
        yield server


@pytest.fixture
def backend(nsd, primary):
    return NsdBackend("nsd-test", nsd.backend_options, [primary.address])


def listed(nsd, zone):
    return f"zone:\t{zone.rstrip('.')}" in nsd.control("zonestatus", zone.rstrip(".")).stdout


def test_create_serves_the_primary_serial_and_repeats_are_noops(nsd, backend, zone):
    check_create(nsd, backend, zone)
    assert listed(nsd, zone)


def test_notify_brings_new_serial(nsd, primary, backend, zone):
    check_notify(nsd, primary, backend, zone)


def test_delete_refuses_and_repeats_are_noops(nsd, backend, zone):
    check_delete(nsd, backend, zone, lambda name: listed(nsd, name))


def test_has_zone_asks_nsd_control_not_dns(nsd, backend, zone):
    check_has_zone(nsd, backend, zone)


def test_apply_many_zones_in_chunks(nsd, primary, backend, monkeypatch):
    names = new_zones(primary, 250, serial=3, prefix="bulk")
    backend.create_zone(names[0])  # already there: still success
    calls = []
    real = backend._control
    monkeypatch.setattr(backend, "_control", lambda *a, **k: (calls.append(a[0]), real(*a, **k))[1])
    results = backend.apply([("CREATE", n) for n in names] + [("DELETE", "never-there.example.test.")])
    assert results == {**{n: None for n in names}, "never-there.example.test.": None}
    assert calls == ["addzones"] * 3 + ["delzones"]
    assert all(wait_for_serial(nsd, n, 3, timeout=20) == 3 for n in names)

    results = backend.apply([("DELETE", n) for n in names])
    assert set(results.values()) == {None}
    assert all(wait_for_serial(nsd, n, None) is None for n in names)


def test_apply_reports_the_servers_reason_per_zone(nsd, primary, zone):
    backend = NsdBackend("nsd-bad-pattern", {**nsd.backend_options, "pattern": "nope"}, [primary.address])
    results = backend.apply([("CREATE", zone)])
    assert "nsd-bad-pattern" in results[zone] and "error pattern nope does not exist" in results[zone]
    with pytest.raises(BackendError, match=r"nsd target 'nsd-bad-pattern' .*addzone .*error pattern nope"):
        backend.create_zone(zone)
    assert not listed(nsd, zone)


def test_wrong_config_names_target_and_message(tmp_path, primary, zone):
    backend = NsdBackend("nsd-down", {"config": str(tmp_path / "nsd.conf"), "timeout": 2}, [primary.address])
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"nsd target 'nsd-down' .*: nsd-control addzone .* failed: "
                                           r"Could not open .*nsd.conf"):
        backend.create_zone(zone)
    results = backend.apply([("DELETE", zone)])
    assert "nsd-down" in results[zone] and "could not read config file" in results[zone]
    with pytest.raises(BackendError, match=r"nsd target 'nsd-down' .*nsd-control zonestatus .* failed"):
        backend.has_zone(zone)  # cannot tell is not "absent"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("options, match", [
    ({}, "option config"),
    ({"config": "nsd.conf"}, "option config"),
    ({"config": "/etc/nsd/nsd.conf", "pattern": "a b"}, "invalid pattern"),
])
def test_bad_options(options, match):
    check_bad_options("nsd", options, match)


def test_notify_only_from_allow_notify_address(primary, zone):
    """NSD takes NOTIFY only from allow-notify addresses: the pool's notify_source must be one."""
    with NsdServer(masters=[primary.address], notify_from=("127.0.0.2",)) as nsd:
        backend = NsdBackend("nsd-acl", nsd.backend_options, [primary.address])
        check_notify(nsd, primary, backend, zone, source="127.0.0.2", turned_away=("127.0.0.1", dns.rcode.REFUSED))
