"""KnotBackend against a real knotd (secondary) pulling from the tiny dnspython primary."""
import logging
import time

import dns.rcode
import pytest

from tests.conftest_servers import primary, wait_for_serial, zone  # noqa: F401
from tests.conftest_servers import at_once, check_bad_options, check_create, check_delete, check_notify, new_zones
from tests.conftest_servers import check_has_zone
from tests.servers.knot import KnotServer, needs_knot
from workers.backends import BackendError
from workers.backends.knot import KnotBackend
from workers.dnsclient import query_soa_serial

pytestmark = [needs_knot]


@pytest.fixture(scope="module")
def knot(primary):
    with KnotServer(masters=[primary.address]) as server:
        yield server


@pytest.fixture
def backend(knot, primary):
    return KnotBackend("knot-test", knot.backend_options, [primary.address])


def configured(knot):
    return knot.knotc("conf-read", "zone.domain").stdout


def test_create_serves_the_primary_serial_and_repeats_are_noops(knot, backend, zone):
    check_create(knot, backend, zone)
    assert f"zone[{zone}].template = dnsctl" in knot.knotc("conf-read", f"zone[{zone}].template").stdout
    assert configured(knot).count(f"= {zone}") == 1


def test_notify_brings_new_serial(knot, primary, backend, zone):
    check_notify(knot, primary, backend, zone)  # ~1 s when the last transfer was <1 s ago (TARGETS.md)


def test_delete_refuses_and_repeats_are_noops(knot, backend, zone):
    check_delete(knot, backend, zone, lambda name: f"= {name}" in configured(knot))


def test_has_zone_asks_knotd_not_dns(knot, backend, zone):
    check_has_zone(knot, backend, zone)


def test_update_of_missing_zone_creates_it(knot, backend, zone):
    backend.update_zone(zone)
    assert wait_for_serial(knot, zone, 1) == 1


def test_apply_many_zones_in_one_transaction(knot, primary, backend, monkeypatch):
    names = new_zones(primary, 60, serial=7, prefix="bulk")
    backend.create_zone(names[0])  # already there: still success
    commits = []
    real = backend._knotc
    monkeypatch.setattr(backend, "_knotc", lambda *a, **k: (commits.append(a[:1]), real(*a, **k))[1])
    results = backend.apply([("CREATE", n) for n in names] + [("DELETE", "never-there.example.test.")])
    assert results == {**{n: None for n in names}, "never-there.example.test.": None}
    assert commits.count(("conf-commit",)) == 1
    assert all(wait_for_serial(knot, n, 7, timeout=15) == 7 for n in names)

    results = backend.apply([("DELETE", n) for n in names[:30]] + [("UPDATE", n) for n in names[30:]])
    assert set(results.values()) == {None}
    assert commits.count(("conf-commit",)) == 2
    assert all(wait_for_serial(knot, n, None) is None for n in names[:30])
    assert all(query_soa_serial(n, knot.host, knot.port) == 7 for n in names[30:])


def test_apply_reports_bad_names_per_zone(knot, backend, zone):
    results = backend.apply([("CREATE", zone), ("CREATE", "bad name.test.")])
    assert results[zone] is None
    assert "knot-test" in results["bad name.test."] and "invalid zone name" in results["bad name.test."]
    assert wait_for_serial(knot, zone, 1) == 1


def test_failed_transaction_is_aborted(knot, primary, zone):
    backend = KnotBackend("knot-bad-template", {**knot.backend_options, "template": "nope"}, [primary.address])
    with pytest.raises(BackendError) as excinfo:
        backend.create_zone(zone)
    message = str(excinfo.value)
    assert "knot-bad-template" in message and "error:" in message  # knotc's own text
    assert f"= {zone}" not in configured(knot)
    assert "OK" in knot.knotc("conf-begin").stdout  # no transaction was left open
    knot.knotc("conf-abort")


def test_stale_transaction_is_aborted_under_the_lock(knot, backend, zone, caplog):
    assert knot.knotc("conf-begin").returncode == 0  # as if a worker died inside a transaction
    caplog.set_level(logging.WARNING)
    backend.create_zone(zone)
    assert wait_for_serial(knot, zone, 1) == 1
    assert "stale configuration transaction" in caplog.text


def test_wrong_socket_names_target_and_knotc_message(tmp_path, primary, zone):
    backend = KnotBackend("knot-down", {"socket": str(tmp_path / "none.sock"), "timeout": 2}, [primary.address])
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"knot target 'knot-down' \(.*none.sock\): knotc conf-begin failed: "
                                           r"error: failed to connect to socket .*none.sock' \(not exists\)$"):
        backend.create_zone(zone)
    with pytest.raises(BackendError, match=r"knot target 'knot-down' .*knotc zone-status failed: .*not exists"):
        backend.has_zone(zone)  # cannot tell is not "absent"
    assert backend.confirm_absent([zone])[zone].startswith("knot target 'knot-down'")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("options, match", [
    ({}, "option socket"),
    ({"socket": "relative.sock"}, "option socket"),
    ({"socket": "/x.sock", "template": "a b"}, "invalid template"),
    ({"socket": "/x.sock", "timeout": "soon"}, "timeout must be a number"),
])
def test_bad_options(options, match):
    check_bad_options("knot", options, match)


def test_notify_only_from_the_acl_address(primary, zone):
    """Knot takes NOTIFY only from addresses an ACL names: the pool's notify_source must be one."""
    with KnotServer(masters=[primary.address], notify_from=("127.0.0.2",)) as knot:
        backend = KnotBackend("knot-acl", knot.backend_options, [primary.address])
        check_notify(knot, primary, backend, zone, source="127.0.0.2", turned_away=("127.0.0.1", dns.rcode.NOTAUTH))


def test_concurrent_changes_are_serialised_by_the_lock(knot, primary):
    """Knot allows one configuration transaction at a time: without the lock these would fail
    with "too many transactions"."""
    names = new_zones(primary, 8, serial=4, prefix="par")
    backends = [KnotBackend(f"knot-{i}", knot.backend_options, [primary.address]) for i in range(8)]
    at_once(KnotBackend.create_zone, backends, names)
    assert all(wait_for_serial(knot, n, 4) == 4 for n in names)
