"""Bind9Backend against a real named (secondary) pulling from the tiny dnspython primary."""

import logging
import os
import socket
import subprocess
import time

import dns.rcode
import pytest

from tests.conftest import needs_named, wait_until
from tests.conftest_servers import check_bad_options, check_has_zone  # noqa: F401
from tests.conftest_servers import primary, soa_rcode, wait_for_serial, zone  # noqa: F401
from tests.servers import free_port
from tests.servers.bind9 import Bind9Server
from workers import backends
from workers.backends import BACKENDS, Backend, BackendError, backend_types, get_backend
from workers.backends.bind9 import Bind9Backend
from workers.dnsclient import query_soa_serial, send_notify

pytestmark = [
    pytest.mark.bind9,
    needs_named,
]

@pytest.fixture(scope="module")
def bind(primary):
    with Bind9Server(primary=primary.address) as server:
        yield server


@pytest.fixture
def backend(bind, primary):
    return Bind9Backend("bind-test", bind.backend_options, [primary.address])


# -- zone lifecycle ----------------------------------------------------------

def test_create_zone_is_served_with_primary_serial(bind, backend, zone):
    backend.create_zone(zone)
    assert wait_for_serial(bind, zone, 1) == 1
    shown = bind.rndc("showzone", zone.rstrip(".")).stdout
    assert "type secondary" in shown and f'file "{zone.rstrip(".")}.db"' in shown


def test_create_twice_is_a_noop(bind, backend, zone):
    backend.create_zone(zone)
    backend.create_zone(zone)
    assert wait_for_serial(bind, zone, 1) == 1


def test_update_of_missing_zone_creates_it(bind, backend, zone):
    backend.update_zone(zone)
    assert wait_for_serial(bind, zone, 1) == 1
    backend.update_zone(zone)  # and again, on an existing zone
    assert wait_for_serial(bind, zone, 1) == 1


def test_update_fixes_primaries(bind, primary, zone):
    dead_port = free_port()
    Bind9Backend("bind-test", bind.backend_options, [("127.0.0.1", dead_port)]).create_zone(zone)
    assert f"port {dead_port};" in bind.rndc("showzone", zone).stdout
    assert query_soa_serial(zone, bind.host, bind.port) is None  # nothing transferred yet

    Bind9Backend("bind-test", bind.backend_options, [primary.address]).update_zone(zone)
    assert f"port {primary.port};" in bind.rndc("showzone", zone).stdout
    assert wait_for_serial(bind, zone, 1) == 1


def _commands(backend, monkeypatch) -> list[str]:
    """The control-channel commands the backend sends from now on (their first word)."""
    sent, call = [], backend._rndc

    def recording(*args, zone):
        sent.append(args[0])
        return call(*args, zone=zone)

    monkeypatch.setattr(backend, "_rndc", recording)
    return sent


@pytest.mark.parametrize("tsig", [None, {"name": "dnsctl-key"}])
def test_update_of_an_unchanged_zone_only_reads_it(bind, primary, zone, monkeypatch, tsig):
    """A change of the zone's data needs only the NOTIFY: update_zone reads the zone's configuration
    (showzone) and leaves it alone when it is what we would add, instead of a modzone that makes named
    rebuild and reload the zone. named prints the statement back as _zone_config writes it, key or not."""
    options = {**bind.backend_options, **({"tsig_key": tsig} if tsig else {})}
    backend = Bind9Backend("bind-test", options, [primary.address])
    backend.create_zone(zone)
    sent = _commands(backend, monkeypatch)
    backend.update_zone(zone)
    assert sent == ["showzone"]
    moved = Bind9Backend("bind-test", options, [primary.address, ("127.0.0.2", primary.port)])
    sent = _commands(moved, monkeypatch)
    moved.update_zone(zone)
    assert sent == ["showzone", "modzone"]
    assert f"127.0.0.2 port {primary.port}" in bind.rndc("showzone", zone.rstrip(".")).stdout
    backend.delete_zone(zone)


def test_notify_brings_new_serial(bind, primary, backend, zone):
    backend.create_zone(zone)
    assert wait_for_serial(bind, zone, 1) == 1
    for serial in (2, 3):
        primary.set_serial(zone, serial)
        assert send_notify(zone, bind.host, bind.port, serial=serial) == dns.rcode.NOERROR
        assert wait_for_serial(bind, zone, serial) == serial


def test_delete_stops_serving_and_is_idempotent(bind, backend, zone):
    backend.create_zone(zone)
    assert wait_for_serial(bind, zone, 1) == 1
    zone_file = os.path.join(bind.dir, zone.rstrip(".") + ".db")
    # named serves from memory first and writes the file a moment later.
    wait_until(lambda: os.path.exists(zone_file), timeout=5, interval=0.02, message="the zone file")

    backend.delete_zone(zone)
    assert query_soa_serial(zone, bind.host, bind.port) is None
    assert soa_rcode(bind, zone) == dns.rcode.REFUSED
    backend.delete_zone(zone)  # missing zone: success
    wait_until(lambda: not os.path.exists(zone_file), timeout=5, interval=0.02,
               message="the zone file to go")  # -clean removes it shortly after


def test_delete_then_recreate(bind, backend, zone):
    backend.create_zone(zone)
    backend.delete_zone(zone)
    backend.create_zone(zone)
    assert wait_for_serial(bind, zone, 1) == 1


def test_has_zone_asks_rndc_not_dns(bind, backend, zone):
    check_has_zone(bind, backend, zone)


def test_has_zone_cannot_tell_with_a_wrong_key(bind, primary, zone):
    options = {**bind.backend_options, "rndc_key_secret": "d3JvbmcgICBzZWNyZXQgd3JvbmcgICBzZWNyZXQgISE="}
    with pytest.raises(BackendError, match=r"bind9 target 'bind-wrong-key' .*rndc showzone"):
        Bind9Backend("bind-wrong-key", options, [primary.address]).has_zone(zone)


def test_zone_names_are_normalised(bind, backend, zone):
    backend.create_zone(zone.upper())
    assert wait_for_serial(bind, zone, 1) == 1
    backend.delete_zone(zone.rstrip("."))
    assert query_soa_serial(zone, bind.host, bind.port) is None


@pytest.mark.parametrize("bad", ["", ".", 'evil"; };.test.', "a b.test.", "../etc.test."])
def test_invalid_zone_name_is_refused_before_rndc(backend, bad):
    with pytest.raises(BackendError, match="invalid zone name"):
        backend.create_zone(bad)


def test_zones_survive_named_restart(bind, backend, zone):
    backend.create_zone(zone)
    assert wait_for_serial(bind, zone, 1) == 1
    port, rndc_port = bind.port, bind.rndc_port
    bind.restart()
    assert (bind.port, bind.rndc_port) == (port, rndc_port)
    assert wait_for_serial(bind, zone, 1) == 1  # rndc-added zones are kept in the NZD


# -- failures ----------------------------------------------------------------

def test_wrong_key_names_target_and_hides_secrets(bind, primary, zone, caplog):
    wrong_secret = "d3JvbmcgICBzZWNyZXQgd3JvbmcgICBzZWNyZXQgISE="
    options = {**bind.backend_options, "rndc_key_secret": wrong_secret}
    backend = Bind9Backend("bind-wrong-key", options, [primary.address])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as excinfo:
        backend.create_zone(zone)
    message = str(excinfo.value)
    assert "bind-wrong-key" in message
    assert "rndc addzone" in message and "rndc:" in message  # rndc's own text follows
    for secret in (wrong_secret, bind.rndc_secret):
        assert secret not in message
        assert secret not in caplog.text
    assert query_soa_serial(zone, bind.host, bind.port) is None


def test_nothing_listening_fails_fast(primary, zone):
    options = {"rndc_port": free_port(udp_too=False), "rndc_key_secret": "c2VjcmV0"}
    backend = Bind9Backend("bind-down", options, [primary.address])
    for call in (backend.create_zone, backend.update_zone, backend.delete_zone):
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"bind-down.*connection refused"):
            call(zone)
        assert time.monotonic() - started < 3


def test_hanging_control_channel_times_out(primary, zone):
    """A peer that accepts TCP but never answers: our timeout must fire."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        options = {"rndc_port": silent.getsockname()[1], "rndc_key_secret": "c2VjcmV0", "timeout": 1}
        backend = Bind9Backend("bind-hung", options, [primary.address])
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"bind-hung.*rndc timed out"):
            backend.create_zone(zone)
        assert time.monotonic() - started < 4


def test_no_rndc_process_per_call(bind, backend, zone, monkeypatch):
    """The control channel is spoken from Python (workers/rndc.py): a zone costs no process."""
    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was started: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    backend.create_zone(zone)
    backend.update_zone(zone)
    backend.check()
    assert wait_for_serial(bind, zone, 1) == 1
    backend.delete_zone(zone)
    assert query_soa_serial(zone, bind.host, bind.port) is None


def test_named_refusal_is_reported_in_rndc_words(bind, backend, zone):
    """A reason named gives (not one of the idempotent ones) is the error, as rndc would print it."""
    bad = Bind9Backend("bind-test", bind.backend_options, [("127.0.0.1", 5300)])
    bad._zone_config = lambda zone: "{ type bogus; };"  # named: no such zone type
    with pytest.raises(BackendError) as excinfo:
        bad.create_zone(zone)
    message = str(excinfo.value)
    assert message.startswith(f"bind9 target 'bind-test' ({bind.host}:{bind.rndc_port}): rndc addzone "
                              f"{zone.rstrip('.')} failed: rndc: 'addzone' failed: unexpected token")
    assert "\n" not in message


@pytest.mark.parametrize("options, match", [
    ({}, "rndc_key_secret is required"),
    ({"rndc_key_secret": 'x"; };'}, "not valid base64"),
    ({"rndc_key_secret": "c2VjcmV0", "rndc_key_algorithm": "rot13"}, "unsupported rndc_key_algorithm"),
    ({"rndc_key_secret": "c2VjcmV0", "rndc_key_name": 'k"; };'}, "invalid rndc_key_name"),
])
def test_bad_options(options, match):
    check_bad_options("bind9", options, match)


def test_masters_must_be_addresses():
    with pytest.raises(BackendError, match="not an IP address"):
        Bind9Backend("bind-bad", {"rndc_key_secret": "c2VjcmV0"}, [("minidns.example", 5300)])


# -- registry ----------------------------------------------------------------

def test_registry_builds_bind9_backend(bind, primary):
    assert "bind9" in backend_types()
    backend = get_backend("bind9", "bind-test", bind.backend_options, [primary.address])
    assert isinstance(backend, Bind9Backend) and isinstance(backend, Backend)
    assert backend.name == "bind-test"


def test_registry_unknown_type():
    with pytest.raises(BackendError, match=r"'t1'.*unknown backend type 'nope'"):
        get_backend("nope", "t1", {}, [])


class FakeBackend(Backend):
    def create_zone(self, zone_name):
        pass


def test_registry_accepts_monkeypatched_entries(monkeypatch):
    monkeypatch.setitem(BACKENDS, "fake", f"{__name__}.FakeBackend")
    assert "fake" in backends.backend_types()
    backend = get_backend("fake", "t1", {"a": 1}, [("127.0.0.1", 5300)])
    assert isinstance(backend, FakeBackend)
    assert backend.masters == [("127.0.0.1", 5300)] and backend.options == {"a": 1}
