"""Helpers and fixtures shared by the Knot, PowerDNS, NSD, TSIG, catalog and mixed-pool tests.

Import the fixtures you use into the test module (``from tests.conftest_servers import primary``).
"""
import asyncio
import base64
import itertools
import os
import threading
import time

import dns.message
import dns.rcode
import dns.query
import pytest

from tests.servers.tiny_primary import TinyPrimary
from workers.dnsclient import query_soa_serial

_counter = itertools.count(1)


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

    def xfr_hosts(self):
        return []

    def tsig_key(self, name):
        return self.keys.get(name.lower())

    def transfer_keys(self, zone_id):
        return self.required.get(zone_id, set())


class MiniDNSThread:
    """workers.minidns.serve() on 127.0.0.1 (a free port) in a thread with its own event loop."""

    host = "127.0.0.1"

    def __init__(self, minidns):
        self.minidns, self.port, self.loop, self.stop_event = minidns, None, None, None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="test-minidns-loop")

    async def _main(self):
        from workers.minidns import serve

        self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
        await serve(self.host, 0, self.minidns, ready=self._ready, stop=self.stop_event, workers=4)

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


def tsig_key(name: str = "dnsctl-xfr", algorithm: str = "hmac-sha256") -> dict:
    return {"name": name, "algorithm": algorithm, "secret": base64.b64encode(os.urandom(32)).decode()}
