"""Helpers and fixtures shared by the BIND9, Knot, PowerDNS, NSD, TSIG, catalog and mixed-pool tests.

Import the fixtures you use into the test module (``from tests.conftest_servers import primary``).
"""
import asyncio
import base64
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dns.message
import dns.rcode
import dns.query
import pytest

from tests.servers.bind9 import Bind9Server
from tests.servers.knot import KnotServer
from tests.servers.nsd import NsdServer
from tests.servers.pdns import PdnsServer
from tests.servers.tiny_primary import TinyPrimary
from workers.backends import BackendError, get_backend
from workers.dnsclient import query_soa_serial, send_notify

_counter = itertools.count(1)


@pytest.fixture(scope="module")
def four_servers(minidns_address):
    """One each of BIND9, Knot, PowerDNS and NSD, secondaries of the tests' MiniDNS."""
    started = []
    try:
        for server in (Bind9Server(primary=minidns_address), KnotServer(masters=[minidns_address]),
                       PdnsServer(), NsdServer(masters=[minidns_address])):
            started.append(server.start())
        yield dict(zip(("bind9", "knot", "pdns", "nsd"), started))
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def mixed_pool(four_servers, minidns_address, worker):
    """The default pool on the four servers, each driven by its backend through a real worker."""
    from zones.services import pools

    host, port = minidns_address
    return pools.save_pool(
        None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        notify_source=host,  # MiniDNS's address: PowerDNS takes NOTIFY only from a zone's master
        targets=[{"name": kind, "type": kind, "options": server.backend_options, "masters": [f"{host}:{port}"]}
                 for kind, server in four_servers.items()],
        nameservers=[{"host": server.host, "port": server.port} for server in four_servers.values()],
    )


@pytest.fixture(scope="module")
def primary():
    with TinyPrimary() as server:
        yield server


@pytest.fixture
def zone(primary):
    """A fresh zone name per test (servers are shared by a module), serial 1 on the primary."""
    name = new_zone_name()
    primary.set_serial(name, 1)
    return name


def new_zone_name(prefix: str = "z") -> str:
    return f"{prefix}{next(_counter)}-{os.getpid()}.example.test."


def new_zones(primary, count, serial, prefix):
    """count fresh zone names, each at serial on the primary."""
    names = [new_zone_name(prefix) for _ in range(count)]
    for name in names:
        primary.set_serial(name, serial)
    return names


def at_once(function, *iterables):
    """function over the zipped iterables, every call at the same time as separate workers would make
    them: what a target's lock must serialise."""
    calls = list(zip(*iterables))
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda args: function(*args), calls))


def wait_for_serial(server, zone, want, timeout=5.0):
    """Poll until server serves `want` for zone (None = not served); return what was last seen.
    The timeout is a deadlock guard: PowerDNS and Knot may need about a second after a NOTIFY."""
    deadline = time.monotonic() + timeout
    while True:
        got = query_soa_serial(zone, server.host, server.port, timeout=1.0)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def soa_rcode(server, zone):
    query = dns.message.make_query(zone, "SOA")
    return dns.query.udp(query, server.host, port=server.port, timeout=2).rcode()


def wait_for_refused(server, zone, timeout=5.0):
    """The rcode once the server REFUSES the zone (NSD drops a zone a few ms after delzone says ok)."""
    deadline = time.monotonic() + timeout
    while (rcode := soa_rcode(server, zone)) != dns.rcode.REFUSED and time.monotonic() < deadline:
        time.sleep(0.02)
    return rcode


def check_create(server, backend, zone):
    """The backend contract every secondary shares: create serves the primary's serial, and a
    second create or an update of the zone changes nothing."""
    backend.create_zone(zone)
    assert wait_for_serial(server, zone, 1) == 1
    backend.create_zone(zone)
    backend.update_zone(zone)
    assert wait_for_serial(server, zone, 1) == 1


def check_delete(server, backend, zone, configured):
    """Delete: the server REFUSES the zone and configured(zone) (its own view) is false; a second
    delete is fine and a new create brings the zone back."""
    backend.create_zone(zone)
    assert wait_for_serial(server, zone, 1) == 1
    backend.delete_zone(zone)
    assert wait_for_refused(server, zone) == dns.rcode.REFUSED
    assert not configured(zone)
    backend.delete_zone(zone)
    backend.create_zone(zone)
    assert wait_for_serial(server, zone, 1) == 1


def check_has_zone(server, backend, zone):
    """has_zone is the server's own word: true for a zone it has but cannot serve (its primary does not
    have it: a SOA query gets SERVFAIL, i.e. None), false once deleted; confirm_absent says so per zone."""
    orphan = new_zone_name("orphan")  # not on the primary: configured, never loaded
    assert not backend.has_zone(zone)
    backend.create_zone(zone)
    backend.create_zone(orphan)
    assert wait_for_serial(server, zone, 1) == 1
    assert backend.has_zone(zone) and backend.has_zone(orphan.upper())
    assert query_soa_serial(orphan, server.host, server.port, timeout=1.0) is None  # what the old check believed
    assert backend.confirm_absent([zone, orphan]) == {
        zone: f"{backend.kind} target {backend.name!r} still has the zone",
        orphan: f"{backend.kind} target {backend.name!r} still has the zone"}
    backend.delete_zone(zone)
    backend.delete_zone(orphan)
    assert not backend.has_zone(zone) and not backend.has_zone(orphan)
    assert backend.confirm_absent([zone, orphan]) == {zone: None, orphan: None}


def check_notify(server, primary, backend, zone, source=None, turned_away=None, timeout=5.0):
    """A NOTIFY from source makes the server fetch the primary's new serial. turned_away =
    (address, rcode): a NOTIFY from that address gets that rcode first (the server's ACL)."""
    backend.create_zone(zone)
    assert wait_for_serial(server, zone, 1) == 1
    primary.set_serial(zone, 2)
    if turned_away:
        address, rcode = turned_away
        assert send_notify(zone, server.host, server.port, serial=2, source=address) == rcode
    assert send_notify(zone, server.host, server.port, serial=2, source=source) == dns.rcode.NOERROR
    assert wait_for_serial(server, zone, 2, timeout=timeout) == 2


def check_bad_options(kind, options, match):
    """The backend refuses bad options up front, with a message naming the target."""
    with pytest.raises(BackendError, match=match) as excinfo:
        get_backend(kind, f"{kind}-bad", options, [("127.0.0.1", 5300)])
    assert f"{kind}-bad" in str(excinfo.value)


class DictZones:
    """MiniDNS's ZoneSource and KeySource from dicts (zone ids are the names), for tests without a database."""

    def __init__(self):
        self.zones: dict[str, tuple[int, list]] = {}
        self.keys: dict[str, dict] = {}  # lower-case name -> {name, algorithm, secret}
        self.required: dict[str, set[str]] = {}  # zone -> names of keys that may transfer it

    def add(self, name: str, serial: int = 1, txt: int = 0, keys: set[str] = frozenset()):
        rows = [(name, "SOA", 300, [f"ns1.{name} hostmaster.{name} {serial} 3600 600 86400 300"]),
                (name, "NS", 300, [f"ns1.{name}"]), (f"ns1.{name}", "A", 300, ["192.0.2.1"])]
        rows += [(f"t{i}.{name}", "TXT", 300, [f'"{"x" * 200} {i}"']) for i in range(txt)]
        self.zones[name] = (serial, rows)
        self.required[name] = set(keys)

    def find(self, names):
        return {n: (n, self.zones[n][0]) for n in names if n in self.zones}

    def records(self, zone_id):
        return zone_id, self.zones[zone_id][1]

    def soa(self, zone_id):
        return zone_id, self.zones[zone_id][1][0]

    def changes(self, zone_id, from_serial, to_serial):
        return None  # no journal: a new serial is rendered whole

    def xfr_hosts(self):
        return ["127.0.0.1"]  # the test servers: loopback is not implicitly allowed

    def pool_of(self, zone_id):
        return None

    def ixfr(self, zone_id, from_serial, to_serial):
        return None  # no journal: IXFR is answered AXFR-style

    def tsig_key(self, name):
        return self.keys.get(name.lower())

    def transfer_keys(self, zone_id):
        return self.required.get(zone_id, set())


class MiniDNSThread:
    """workers.minidns.serve() on 127.0.0.1 (a free port) in a thread with its own event loop."""

    host = "127.0.0.1"

    def __init__(self, minidns, **serve_options):
        self.minidns, self.port, self.loop, self.stop_event = minidns, None, None, None
        self.serve_options = {"workers": 4, **serve_options}
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="test-minidns-loop")

    async def _main(self):
        from workers.minidns import serve

        self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
        await serve(self.host, 0, self.minidns, ready=self._ready, stop=self.stop_event, **self.serve_options)

    def _ready(self, host, port):
        self.port = port
        self.ready.set()

    @property
    def address(self):
        return self.host, self.port

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10), "MiniDNS did not bind"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert not [t for t in threading.enumerate() if t.name.startswith("minidns")], "pool threads left"


def tsig_key(name: str = "dnsctl-xfr", algorithm: str = "hmac-sha256") -> dict:
    return {"name": name, "algorithm": algorithm, "secret": base64.b64encode(os.urandom(32)).decode()}
