"""MiniDNS: the small authoritative primary that every target transfers its zones from.

`MiniDNS.handle` turns one query (wire bytes) into the response messages (wire bytes) and
never touches a socket, so tests call it directly. `serve` is a thin asyncio transport
around it. Zones come from a `ZoneSource` (the database by default). A zone is rendered once
per serial into its wire form, in chunks that are AXFR message bodies shared by every transfer
(`RenderedZone`), kept in an LRU bounded by bytes; the next serial is made from the cached one
and the change journal's differences, not read again. A render streams: the first message of a
transfer leaves as soon as its chunk is made. SOA answers never wait for a render. IXFR is
answered from the change journal (zones.journal) with one condensed difference, or AXFR-style
when the journal does not reach back to the client's serial.
"""
import asyncio
import collections
import functools
import io
import ipaddress
import json
import logging
import queue
import socket
import struct
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Protocol

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from dnsctl import metrics
from zones.serials import is_newer
from zones.validation import MAX_RRSET_WIRE

log = logging.getLogger(__name__)

MAX_MESSAGE = 65535
UDP_MAX = 1232  # the DNS flag day 2020 size: no UDP answer is larger, whatever EDNS size the client claims
XFR_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)
_OPCODE_MASK = 0x7800


# --- where zones come from ----------------------------------------------------------------------


class ZoneSource(Protocol):
    """What MiniDNS needs to know about zones; the database in production, a dict in tests."""

    def find(self, names: list[str]) -> dict[str, tuple[object, int]]:
        """The live zones among `names` (absolute, lower case) as name -> (zone id, serial); the
        closest one answers. A source that serves catalogs returns only those when one is among names."""

    def records(self, zone_id) -> tuple[str, Iterable[tuple[str, str, int, list[str]]]] | None:
        """(zone name, [(owner, type, ttl, [rdata text])]) read as one consistent snapshot; the rows
        may be an iterator (read as they come), best with the apex SOA first."""

    def soa(self, zone_id) -> tuple[str, tuple[str, str, int, list[str]]] | None:
        """(zone name, the apex SOA row): what a SOA answer needs, without reading the zone."""

    def changes(self, zone_id, from_serial: int, to_serial: int) -> list[tuple[list, list]] | None:
        """The (removed, added) rows of each change from from_serial to to_serial, in order (whole
        RRsets, like records()'), or None when not known: then the zone is read again."""

    def xfr_hosts(self) -> dict[object, Iterable[str]] | Iterable[str]:
        """Who may transfer what: {pool id: addresses, networks or host names of its servers}, with
        the hosts that may transfer every zone under None; a plain list means every zone."""

    def pool_of(self, zone_id) -> object:
        """The pool whose servers may transfer the zone (any value xfr_hosts() uses as a key)."""

    def ixfr(self, zone_id, from_serial: int, to_serial: int) -> tuple[list, list] | None:
        """The condensed difference from from_serial to to_serial as (removed, added) rows like
        records()' (each list starting with its SOA), or None when it is not known (AXFR then)."""


def _has_catalog(hits: dict) -> bool:
    """A catalog among find()'s cached rows (id, serial, is a catalog): its serial is read from the
    database instead. A catalog's serial is bumped and NOTIFYed at once (workers.catalog), so a consumer's
    SOA query may come before PostgreSQL's notice reaches us, and an old serial would keep it from
    transferring until its refresh; consumers ask rarely, one read each is cheap."""
    return any(row[2] for rows in hits.values() for row in rows)


class KeySource(Protocol):
    """Where TSIG keys come from (the database in production)."""

    def tsig_key(self, name: str) -> dict | None:
        """{name, algorithm, secret} of the key called `name` (no trailing dot), or None."""

    def transfer_keys(self, zone_id) -> set[str]:
        """Names (lower case) of the keys that may transfer the zone; empty: no key is required."""


class DatabaseZoneSource:
    """Reads the Django models. Imports are local so the core stays importable without Django.

    With `listen` (the server; see `watch`), what `find` answers is kept per name, with each zone's pool
    and each pool's transfer keys, and kept current by PostgreSQL: a trigger NOTIFYs on commit what
    changed (a zone's id, serial and pool; a catalog's; "keys"), so the notice comes before any NOTIFY of
    ours can make a secondary ask, and a change costs no read. While the listening connection is down,
    or on other databases, every `find` reads the database."""

    CHANNEL = "dnsctl_zone_names"
    MAX_NAMES = 200_000  # cached names (hostile queries ask for random ones): past it, start over
    READERS = 4  # zones read from the database at once
    SMALL = 2000  # rows: a zone this small is read in one statement, a bigger one streams (see records)
    DIFF_ROWS = 1000  # the journal's rows a zone's last difference may hold to be kept for its IXFR
    KEPT_DIFFS = 10_000  # zones whose last difference is kept (the IXFRs that follow come within seconds)

    def __init__(self, listen: bool = False):
        self.listen = listen
        self._names: dict[str, list] = {}  # name -> [(zone or pool id, serial, is a catalog)]
        self._catalogs: dict[str, list] = {}  # every catalog while listening: name -> [(pool id, serial, True)]
        self._pools: dict = {}  # zone id -> pool id
        self._keys: dict = {}  # pool id -> transfer_keys()
        self._keys_generation = 0  # bumped by every "keys" notice: a read that raced one is not kept
        self._diffs: dict = {}  # zone id -> (from serial, to serial, changes()): the last one read
        self._generation = 0  # bumped by every notice: a read that raced one is not kept
        self._live = False  # the listening connection is up: cached answers may be used
        self._detailed = False  # the notices say pools and keys (0018): pool_of and transfer_keys may be cached
        self._lock = threading.Lock()
        self._watchers = []
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        # Zone reads run in threads that keep their database connections (CONN_MAX_AGE), not one new
        # connection per render; the queues they fill are unbounded, so a reader never waits on a reader.
        self._readers = ThreadPoolExecutor(self.READERS, thread_name_prefix="zone-read")

    def find(self, names):
        """Zones and pools' catalogs (ids ("catalog", pool id)) in one query. `names` are a query name
        and its ancestors, so a catalog among them means the query is at or below the catalog: then
        only catalogs are returned, and no zone row, whatever its name, answers for a catalog's names."""
        if self.listen and self._listener is None:
            self.watch()
        with self._lock:
            generation, cached = self._generation, self._live
            hits = {name: self._names[name] for name in names if name in self._names} if cached else {}
        if _has_catalog(hits):  # read, never cached: see find_cached
            hits = {}
        missing = [name for name in names if name not in hits]
        if missing:
            read, pools = _retrying(self._read, missing)
            with self._lock:
                if self._live and self._generation == generation:
                    if len(self._names) > self.MAX_NAMES:
                        self._names.clear()
                        self._pools.clear()
                    self._names.update(read)
                    self._pools.update(pools)
            hits.update(read)
        return self._found(names, hits)

    def find_cached(self, names):
        """find() from the cache alone, or None when a name is not cached (or nobody listens)."""
        with self._lock:
            if not self._live or any(name not in self._names for name in names):
                return None
            hits = {name: self._names[name] for name in names}
        if _has_catalog(hits):  # its consumers ask right after catalog_changed's NOTIFY, maybe before our notice
            return None
        return self._found(names, hits)

    @staticmethod
    def _found(names, hits):
        rows = [(name, *row) for name in names for row in hits[name]]
        if any(catalog for *_, catalog in rows):
            return {name: (("catalog", pool_id), serial) for name, pool_id, serial, catalog in rows if catalog}
        return {name: (zone_id, serial) for name, zone_id, serial, _ in rows}

    def _read(self, names) -> tuple[dict[str, list], dict]:
        """(name -> [(id, serial, is a catalog)] for each of `names` (empty: none), zone id -> pool id)."""
        from django.db.models import Value

        from zones.models import Pool, Zone

        zones = (Zone.objects.filter(name__in=names, deleted_at__isnull=True).exclude(action=Zone.Action.DELETE)
                 .annotate(catalog=Value(False)).order_by().values_list("name", "id", "serial", "catalog", "pool_id"))
        catalogs = (Pool.objects.filter(catalog_zone__in=names).annotate(catalog=Value(True)).order_by()
                    .values_list("catalog_zone", "id", "catalog_serial", "catalog", "id"))
        found, pools = {name: [] for name in names}, {}
        for name, some_id, serial, catalog, pool_id in zones.union(catalogs, all=True):
            found.setdefault(name, []).append((some_id, serial, catalog))
            if not catalog:
                pools[some_id] = pool_id
        return found, pools

    def watch(self, on_change=None):
        """Start listening (once), and call on_change(name) from the listener's thread for every
        committed change of a zone or catalog named `name` (MiniDNS renders it ahead then)."""
        if on_change is not None:
            self._watchers.append(on_change)
        from django.db import connection

        if self._listener is None and self.listen and connection.vendor == "postgresql":
            self._listener = threading.Thread(target=self._listen, name="zone-names-listener", daemon=True)
            self._listener.start()

    def close(self):
        self._stop.set()
        self._readers.shutdown(wait=False, cancel_futures=True)

    def _listen(self):
        """LISTEN on a connection of its own; on any trouble, stop trusting the cache until listening again."""
        import select

        import psycopg2
        from django.db import connection

        while not self._stop.is_set():
            conn = None
            try:
                conn = psycopg2.connect(**connection.get_connection_params())
                conn.autocommit = True
                cursor = conn.cursor()
                cursor.execute(f"LISTEN {self.CHANNEL}")
                cursor.execute("SELECT catalog_zone, id, catalog_serial FROM zones_pool WHERE catalog_zone IS NOT NULL")
                catalogs = {name: [(uuid.UUID(str(pool_id)), serial, True)] for name, pool_id, serial in cursor}
                cursor.execute("SELECT to_regproc('dnsctl_transfer_keys_notice') IS NOT NULL")  # migration 0018
                (detailed,) = cursor.fetchone()
                with self._lock:  # anything may have changed while nobody listened
                    self._forget()
                    self._catalogs = catalogs
                    self._detailed = detailed
                    self._live = True
                while not self._stop.is_set():
                    if select.select([conn], [], [], 1.0)[0]:
                        conn.poll()
                        payloads = [notice.payload for notice in conn.notifies]
                        conn.notifies.clear()
                        with self._lock:
                            self._generation += 1
                            names = [self._noticed(payload) for payload in payloads]
                        for name in dict.fromkeys(name for name in names if name):
                            for on_change in self._watchers:
                                on_change(name)
            except Exception:  # noqa: BLE001 - reconnect; meanwhile every find reads the database
                log.warning("MiniDNS: not listening for zone changes (reading the database per query)",
                            exc_info=True)
            finally:
                with self._lock:
                    self._live = False
                    self._forget()
                if conn is not None:
                    conn.close()
            self._stop.wait(1.0)

    def _forget(self):
        self._names.clear()
        self._pools.clear()
        self._keys.clear()
        self._generation += 1
        self._keys_generation += 1

    def _noticed(self, payload: str) -> str | None:
        """Apply one notice (zones.migrations 0018) to the cache, under the lock; the name it is about."""
        if not payload.startswith("["):  # a bare name (the triggers of 0014): read it again
            self._names.pop(payload, None)
            return payload
        kind, *fields = json.loads(payload)
        if kind == "keys":
            self._keys.clear()
            self._keys_generation += 1
            return None
        name, some_id, serial = fields[0], uuid.UUID(fields[1]), fields[2]
        if kind == "catalog":
            rows = [] if serial is None else [(some_id, serial, True)]
            self._catalogs[name] = rows
            if name in self._names:
                self._names[name] = [row for row in self._names[name] if not row[2]] + rows
            return name
        if fields[3] is not None:
            self._pools[some_id] = uuid.UUID(fields[3])
        rows = self._names.get(name)
        if serial is not None:  # at most one live zone has a name: this one
            self._names[name] = [(some_id, serial, False)] + self._catalogs.get(name, [])
        elif rows is not None:
            self._names[name] = [row for row in rows if row[2] or row[0] != some_id]
        return name

    def records(self, zone_id):
        """The SOA first, then the rest, all in one snapshot (so the SOA serial always matches the records,
        and the zone TTL, it is served with). A small zone is one statement; a bigger one is read in one
        REPEATABLE READ transaction by a thread of its own, so that any thread may consume the rows while
        later ones are still coming. A caller inside a transaction (tests, shells) reads in it, at once,
        to see its own writes."""
        from django.db import connection

        if isinstance(zone_id, tuple):
            return self._catalog(zone_id[1])
        small, found = _retrying(self._read_small, zone_id)
        if small:
            return found
        if connection.in_atomic_block:
            soa = self.soa(zone_id)
            return soa and (soa[0], [soa[1], *self._rest(zone_id, soa[0])])
        batches = queue.SimpleQueue()
        self._readers.submit(self._read_zone, zone_id, batches)
        first = batches.get()
        if isinstance(first, Exception):
            raise first
        return first and (first[0], self._drain(first[1], batches))

    _SMALL = ("SELECT z.name, r.name, r.type, COALESCE(r.ttl, z.ttl), r.records FROM zones_recordset r "
              "JOIN zones_zone z ON z.id = r.zone_id WHERE r.zone_id = %s LIMIT %s")

    def _read_small(self, zone_id):
        """(True, records()) when the zone has at most SMALL rows: one statement, one round trip; else (False, None)."""
        from django.db import connection
        from django.db.models.functions import Coalesce

        from zones.models import RecordSet

        if connection.vendor == "postgresql":  # plain SQL: the ORM spent ten times longer building it than running it
            with connection.cursor() as cursor:
                cursor.execute(self._SMALL, [zone_id, self.SMALL + 1])
                rows = [(*row[:4], json.loads(row[4]) if isinstance(row[4], str) else row[4]) for row in cursor]
        else:
            rows = list(RecordSet.objects.filter(zone_id=zone_id).order_by().values_list(
                "zone__name", "name", "type", Coalesce("ttl", "zone__ttl"), "records")[:self.SMALL + 1])
        if len(rows) > self.SMALL:
            return False, None
        soa = next((i for i, row in enumerate(rows) if row[2] == "SOA" and row[1] == row[0]), None)
        if soa is None:
            return True, None
        rows.insert(0, rows.pop(soa))
        return True, (rows[0][0], [row[1:] for row in rows])

    @staticmethod
    def _rest(zone_id, name):
        from django.db.models.functions import Coalesce

        from zones.models import RecordSet

        return (RecordSet.objects.filter(zone_id=zone_id).exclude(type="SOA", name=name).order_by()
                .values_list("name", "type", Coalesce("ttl", "zone__ttl"), "records"))

    def _read_zone(self, zone_id, batches, size: int = 2000):
        """The reading thread: the SOA, then batches of rows, then None (or the exception)."""
        from django.db import connection

        def start():
            connection.set_autocommit(False)
            if connection.vendor == "postgresql":
                connection.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return self.soa(zone_id)

        _tidy_connection()
        try:
            soa = _retrying(start)
            batches.put(soa and soa[:2])
            if soa is None:
                return
            batch = []
            for row in self._rest(zone_id, soa[0]).iterator(chunk_size=size):
                batch.append(row)
                if len(batch) == size:
                    batches.put(batch)
                    batch = []
            batches.put(batch)
            batches.put(None)
        except Exception as exc:  # noqa: BLE001 - the render fails with it (and logs it once)
            batches.put(exc)
        finally:
            try:
                connection.rollback()
                connection.set_autocommit(True)
            except Exception:  # noqa: BLE001 - a connection in trouble is not kept
                connection.close()

    @staticmethod
    def _drain(soa_row, batches):
        yield soa_row
        while (batch := batches.get()) is not None:
            if isinstance(batch, Exception):
                raise batch
            yield from batch

    def soa(self, zone_id):
        """(zone name, the apex SOA row): one indexed read."""
        from django.db.models import F
        from django.db.models.functions import Coalesce

        from zones.models import RecordSet

        if isinstance(zone_id, tuple):
            found = self._catalog(zone_id[1])
            return found and (found[0], found[1][0])
        row = _retrying(lambda: RecordSet.objects.filter(zone_id=zone_id, type="SOA", name=F("zone__name")).order_by()
                        .values_list("zone__name", Coalesce("ttl", "zone__ttl"), "records").first())
        return row and (row[0], (row[0], "SOA", row[1], row[2]))

    def thread_done(self, ending: bool = True):
        """Work of a MiniDNS thread of its own is done: a thread that ends closes its connection; the
        keep-ahead thread, which renders every change, keeps a good one (CONN_MAX_AGE) for the next."""
        from django.db import connection

        if ending:
            connection.close()
        else:
            _tidy_connection()

    def changes(self, zone_id, from_serial, to_serial):
        """From the change journal; catalogs keep none. A small difference is kept for the IXFR that follows."""
        from zones import journal

        if isinstance(zone_id, tuple):
            return None
        diffs = _retrying(journal.ixfr_diffs, zone_id, from_serial, to_serial)
        if diffs and sum(len(removed) + len(added) for removed, added in diffs) <= self.DIFF_ROWS:
            with self._lock:
                if len(self._diffs) >= self.KEPT_DIFFS:
                    self._diffs.clear()
                self._diffs[zone_id] = (from_serial, to_serial, diffs)
        return diffs

    def ixfr(self, zone_id, from_serial, to_serial):
        """From the change journal (the difference changes() read last, if it is this one); catalogs keep none."""
        from zones import journal

        if isinstance(zone_id, tuple):
            return None
        with self._lock:
            kept = self._diffs.get(zone_id)
        if kept is not None and kept[:2] == (from_serial, to_serial):
            return journal.condense(kept[2])
        return _retrying(journal.ixfr, zone_id, from_serial, to_serial)

    def xfr_hosts(self):
        """Each pool's targets' hosts, nameservers and also-notifies; MINIDNS_ALLOW_XFR_FROM for every zone."""
        from django.conf import settings

        from zones.models import PoolAlsoNotify, PoolNameserver, PoolTarget

        hosts = {None: set(settings.DNSCTL.get("MINIDNS_ALLOW_XFR_FROM") or [])}
        for pool_id, options in PoolTarget.objects.values_list("pool_id", "options"):
            hosts.setdefault(pool_id, set()).update(
                str(options[key]) for key in ("host", "rndc_host") if (options or {}).get(key))
        for model in (PoolNameserver, PoolAlsoNotify):
            for pool_id, host in model.objects.values_list("pool_id", "host"):
                hosts.setdefault(pool_id, set()).add(host)
        return hosts

    def pool_of(self, zone_id):
        """The zone's pool: known from find() or the notices while listening, else one read."""
        from zones.models import Zone

        if isinstance(zone_id, tuple):
            return zone_id[1]
        with self._lock:
            if self._live and self._detailed and zone_id in self._pools:
                return self._pools[zone_id]
        return _retrying(lambda: Zone.objects.filter(id=zone_id).values_list("pool_id", flat=True).first())

    def _catalog(self, pool_id):
        """The serial first, the members after: members may be newer than the serial, never older
        (every change after this read bumps the serial again, see workers.catalog)."""
        from workers import catalog
        from zones.models import Pool, Zone

        pool = Pool.objects.filter(id=pool_id).values("catalog_zone", "catalog_serial").first()
        if pool is None or not pool["catalog_zone"]:
            return None
        name = pool["catalog_zone"]
        # A zone row at or below the catalog (one that got past the services) is never served: not a member either.
        members = (Zone.objects.filter(pool_id=pool_id, deleted_at__isnull=True).exclude(action=Zone.Action.DELETE)
                   .exclude(name=name).exclude(name__endswith="." + name).order_by("id").values_list("id", "name"))
        return name, catalog.rows(name, pool["catalog_serial"], list(members))

    def tsig_key(self, name):
        from zones.models import TsigKey

        return TsigKey.objects.filter(name__iexact=name).values("name", "algorithm", "secret").first()

    def transfer_keys(self, zone_id):
        """The keys of the zone's pool and of its targets (a transfer signed with any of them is allowed); kept
        per pool while listening (a "keys" notice, on any change of a pool's or a target's key, drops them)."""
        from zones.models import Pool

        pool_id = self.pool_of(zone_id)
        with self._lock:
            generation = self._keys_generation
            if self._live and self._detailed and pool_id in self._keys:
                return self._keys[pool_id]
        rows = _retrying(lambda: list(Pool.objects.filter(id=pool_id)
                                      .values_list("tsig_key__name", "targets__tsig_key__name")))
        keys = {name.lower() for row in rows for name in row if name}
        with self._lock:
            if self._live and self._keys_generation == generation:
                self._keys[pool_id] = keys
        return keys


def _tidy_connection(every: float = 10.0):
    """Django's close_old_connections() for MiniDNS's own threads, at most every `every` seconds per thread (at
    once after a database error, or when CONN_MAX_AGE is up): each call makes the next query start with a
    health check (CONN_HEALTH_CHECKS), a SELECT 1 round trip, which was one more query per DNS query. A
    connection broken in between fails one read, which is then tried again on a new one (_retrying)."""
    from django.db import close_old_connections, connection

    now = time.monotonic()
    if (now >= getattr(_tidied, "next", 0) or connection.errors_occurred
            or (connection.close_at is not None and now >= connection.close_at)):
        close_old_connections()
        _tidied.next = now + every


_tidied = threading.local()


def _retrying(read, *args):
    """read(*args) on this thread's connection; once more, on a new connection, if the old one is broken (say,
    PostgreSQL restarted since its last use). Inside a transaction (tests, shells) the error stands."""
    from django.db import InterfaceError, OperationalError, connection

    try:
        return read(*args)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block or (connection.connection is not None and connection.is_usable()):
            raise
        connection.close()
        return read(*args)


# --- one zone, rendered -----------------------------------------------------------------------

CHUNK_BYTES = 63_000  # RR bytes in one AXFR message body: room is left for header, question, SOAs, OPT, TSIG
RRSET_OVERHEAD = 800  # bytes per RRset besides its wire form: the cache's weight matches what a zone adds to RSS
_TO_ORIGIN = b"\xc0\x0c"  # a pointer to offset 12: the question's name, which every transfer asks for
_OPT = b"\x00\x00\x29\x20\x00\x00\x00\x00\x00\x00\x00"  # EDNS0, payload 8192, as dns.message.make_response
_TYPES = {name: int(dns.rdatatype.from_text(name)) for name in (  # plain ints: an enum key would make the GC
    "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA", "DS", "SSHFP", "NAPTR")}  # track the dict
_EMPTY: dict = {}


def _rdtype(text: str) -> int:
    return _TYPES.get(text) or int(dns.rdatatype.from_text(text))


class RenderFailed(Exception):
    """The zone could not be rendered at this serial (already logged, once)."""


class _OriginOnly(dict):
    """A compression table that points names at the origin (offset 12) and learns nothing else, so each
    RRset's wire form fits anywhere in any message whose question is the origin."""

    def __setitem__(self, key, value):
        pass


def _count(piece) -> int:
    """Records in a piece: an RRset's wire form (or part of it) behind a 2-byte count. Pieces are plain
    bytes, and a zone's dicts hold nothing else, so the garbage collector never walks a rendered zone."""
    return (piece[0] << 8) | piece[1]


def _serial_of(soa: bytes) -> int:
    """The serial of a one-record SOA piece: the first of the five numbers that end its rdata."""
    return struct.unpack_from("!I", soa, len(soa) - 20)[0]


def _pieces_of(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


class _Chunk:
    """RRsets (owner -> type -> their piece, or pieces for an RRset too big for one message) that make
    one AXFR message body (or a few); immutable once sealed, shared by every zone snapshot that does not
    touch it."""

    __slots__ = ("entries", "size", "bodies")

    def __init__(self, entries=None, size=0):
        self.entries, self.size, self.bodies = entries if entries is not None else {}, size, None

    def seal(self) -> "_Chunk":
        bodies, parts, used, count = [], [], 0, 0
        for node in self.entries.values():
            for value in node.values():
                for piece in _pieces_of(value):
                    if parts and used + len(piece) - 2 > CHUNK_BYTES:
                        bodies.append((b"".join(parts), count))
                        parts, used, count = [], 0, 0
                    parts.append(memoryview(piece)[2:])
                    used, count = used + len(piece) - 2, count + _count(piece)
        if parts:
            bodies.append((b"".join(parts), count))
        self.bodies = bodies
        return self

    def copy(self) -> "_Chunk":
        return _Chunk(dict(self.entries), self.size)


class RenderedZone:
    """A zone at one serial, kept as wire: each RRset's records with the owner compressed against the
    origin at offset 12 (where every transfer's question name sits), grouped in chunks of about
    CHUNK_BYTES that are an AXFR's message bodies, ready for every transfer to share. Queries read the
    same wire back into RRsets. A render streams in: transfers send the chunks made so far while later
    rows are still being read (`advance`, driven by whoever needs more). `apply` makes the next serial's
    zone from the journal's changes, sharing every chunk it does not touch."""

    def __init__(self, origin: str, wanted: int | None = None, rows: Iterator | None = None):
        self.origin_text = origin.lower()
        self.origin = dns.name.from_text(self.origin_text)
        self.origin_wire = self.origin.to_wire()
        self.wanted = wanted  # the serial asked for (the render may find a newer one)
        self._soa_entry: bytes | None = None  # the apex SOA as a piece; its RRset only when asked (see soa)
        self._soa: dns.rrset.RRset | None = None
        self.serial = wanted
        self.soa_wire = b""
        self.nodes: dict[str, dict[int, bytes]] = {}  # owner text -> type -> the RRset as a piece
        self.names: dict[str, int] = {}  # owners and their ancestors -> owners at or below: NODATA, not NXDOMAIN
        self.chunks: list[_Chunk] = []
        self.records = 0
        self.weight = 0  # estimated bytes held (the LRU's weight)
        self.complete, self.error = False, None
        self.on_done = None  # called once: on_done(zone, error or None)
        self._rows, self._open = rows, _Chunk()
        self.started = time.perf_counter()
        self._build = threading.Lock()
        self._compress = _OriginOnly({self.origin: 12})

    @property
    def soa(self) -> dns.rrset.RRset | None:
        """The apex SOA as an RRset, made when first asked: parsing it is most of what applying a small change
        costs, and neither the keep-ahead render nor a transfer needs it."""
        if self._soa is None and self._soa_entry is not None:
            self._soa = self._rrset(self._soa_entry)
        return self._soa

    # -- rendering --
    def advance(self, until) -> None:
        """Render more rows until until() holds or the zone is complete; a chunk at a time under the
        build lock, so transfers waiting for an early chunk go on while a query drives the rest."""
        while not self.complete and not until():
            with self._build:
                if self.error is not None:
                    raise RenderFailed(str(self.error)) from self.error
                sealed = len(self.chunks)
                try:
                    while not self.complete and len(self.chunks) == sealed and not until():
                        row = next(self._rows, None)
                        if row is None:
                            self._finish()
                        else:
                            self._add(*row)
                except Exception as exc:
                    self.error = exc
                    if self.on_done is not None:
                        self.on_done(self, exc)
                    raise RenderFailed(str(exc)) from exc
        if self.error is not None and not self.complete:
            raise RenderFailed(str(self.error)) from self.error

    def _finish(self):
        if self._soa_entry is None:
            raise ValueError(f"zone {self.origin_text} has no SOA at its apex")
        if self._open.entries:
            self.chunks.append(self._open.seal())
        self._open, self._rows = None, None
        self.complete = True
        if self.on_done is not None:
            self.on_done(self, None)

    def _add(self, owner: str, rtype: str, ttl: int, records: list[str]):
        owner = owner.lower()
        rdtype = _rdtype(rtype)
        pieces = self._wire(owner, rdtype, ttl, records)
        if self._put_node(owner, rdtype, pieces):
            return
        size = sum(len(piece) - 2 for piece in pieces)
        if self._open.entries and self._open.size + size > CHUNK_BYTES:
            self.chunks.append(self._open.seal())
            self._open = _Chunk()
        node = self._open.entries.get(owner)
        if node is None:
            self._open.entries[owner] = node = {}
        node[rdtype] = pieces[0] if len(pieces) == 1 else tuple(pieces)
        self._open.size += size

    def _put_node(self, owner, rdtype, pieces) -> bool:
        """Index an RRset for queries; True for the apex SOA (which transfers send first and last)."""
        entry = pieces[0] if len(pieces) == 1 else (
            struct.pack("!H", sum(map(_count, pieces))) + b"".join(piece[2:] for piece in pieces))
        node = self.nodes.get(owner)
        if node is None:
            self._name_added(owner)
            self.nodes[owner] = node = {}
        node[rdtype] = entry
        self.records += _count(entry)
        self.weight += 2 * len(entry) + RRSET_OVERHEAD
        if rdtype == dns.rdatatype.SOA and owner == self.origin_text:
            self._soa_entry, self._soa, self.soa_wire = entry, None, entry[2:]
            self.serial = _serial_of(entry) if _count(entry) == 1 else self.soa[0].serial
            return True
        return False

    def _wire(self, owner: str, rdtype: int, ttl: int, records) -> list[bytes]:
        """The RRset's records in wire form, as pieces of at most CHUNK_BYTES (see _count)."""
        if owner.isascii() and "\\" not in owner and owner.endswith("."):
            head = self._name(owner, compress=True)
        else:
            head = dns.name.from_text(owner).to_wire()
        head += struct.pack("!HHI", rdtype, dns.rdataclass.IN, ttl)
        pieces, part, used = [], [], 0
        for text in records:
            rdata = self._rdata(rdtype, text)
            rr = head + struct.pack("!H", len(rdata)) + rdata
            if len(rr) > MAX_RRSET_WIRE:  # the API accepts none: one this big still fits a message alone
                raise ValueError(f"a {dns.rdatatype.to_text(rdtype)} record of {owner} is too big for a message")
            if part and used + len(rr) > CHUNK_BYTES:
                pieces.append(struct.pack("!H", len(part)) + b"".join(part))
                part, used = [], 0
            part.append(rr)
            used += len(rr)
        pieces.append(struct.pack("!H", len(part)) + b"".join(part))
        return pieces

    def _rdata(self, rdtype: int, text: str) -> bytes:
        """One record's wire form. The common types are written directly (a render spends its time here);
        anything unusual (escapes, quotes inside text, other types) goes through dnspython."""
        plain = "\\" not in text and text.isascii()
        if rdtype == dns.rdatatype.A:
            return socket.inet_pton(socket.AF_INET, text)
        if rdtype == dns.rdatatype.AAAA:
            return socket.inet_pton(socket.AF_INET6, text)
        if plain and rdtype in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR) and text.endswith("."):
            return self._name(text, compress=True)
        if plain and rdtype == dns.rdatatype.MX:
            preference, _, exchange = text.partition(" ")
            if preference.isdigit() and exchange.endswith(".") and " " not in exchange:
                return struct.pack("!H", int(preference)) + self._name(exchange, compress=True)
        if plain and rdtype == dns.rdatatype.SRV:
            fields = text.split(" ")
            if len(fields) == 4 and all(f.isdigit() for f in fields[:3]) and fields[3].endswith("."):
                return struct.pack("!HHH", *map(int, fields[:3])) + self._name(fields[3], compress=False)
        if plain and rdtype == dns.rdatatype.SOA:  # every change writes one (or three, for an IXFR)
            fields = text.split(" ")
            if (len(fields) == 7 and fields[0].endswith(".") and fields[1].endswith(".")
                    and all(f.isdigit() and int(f) < 2**32 for f in fields[2:])):
                return (self._name(fields[0], compress=True) + self._name(fields[1], compress=True)
                        + struct.pack("!IIIII", *map(int, fields[2:])))
        if plain and rdtype == dns.rdatatype.TXT and text.count('"') == 2 and text[0] == text[-1] == '"':
            string = text[1:-1].encode()
            if len(string) < 256:
                return bytes((len(string),)) + string
        buffer = io.BytesIO()
        dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=self.origin, relativize=False).to_wire(
            buffer, self._compress, self.origin)
        return buffer.getvalue()

    def _name(self, text: str, compress: bool) -> bytes:
        """An absolute, plain ASCII name's wire form; compressed against the origin where allowed."""
        if compress and text == self.origin_text:
            return _TO_ORIGIN
        if compress and text.endswith("." + self.origin_text):
            relative, tail = text[:-len(self.origin_text) - 1], _TO_ORIGIN
        else:
            relative, tail = text[:-1], b"\x00"
        if not relative:
            return tail
        return b"".join(bytes((len(label),)) + label for label in relative.encode().split(b".")) + tail

    def _name_added(self, owner):
        names, name = self.names, owner
        while name:
            names[name] = names.get(name, 0) + 1
            if name == self.origin_text:
                break
            name = _parent(name)

    def _name_removed(self, owner):
        names, name = self.names, owner
        while name:
            left = names.get(name, 1) - 1
            if left:
                names[name] = left
            else:
                names.pop(name, None)
            if name == self.origin_text:
                break
            name = _parent(name)

    # -- the next serial from the journal --
    def apply(self, changes: list[tuple[list, list]], wanted: int) -> "RenderedZone":
        """This zone with the journal's changes applied (whole RRsets removed, then added, change by
        change): a new zone sharing every chunk, node and name it does not touch. Raises ValueError
        when the changes do not fit this zone (then it is read again)."""
        new = RenderedZone(self.origin_text, wanted)
        new._soa_entry, new._soa, new.serial, new.soa_wire = self._soa_entry, self._soa, self.serial, self.soa_wire
        new.nodes, new.names, new.chunks = dict(self.nodes), dict(self.names), list(self.chunks)
        new.records, new.weight = self.records, self.weight
        copied: set[int] = set()
        for removed, added in changes:
            for owner, rtype, _, _ in removed:
                new._drop(owner.lower(), _rdtype(rtype), copied)
            for owner, rtype, ttl, records in added:
                new._place(owner.lower(), _rdtype(rtype), ttl, records, copied)
        if new.serial != wanted:
            raise ValueError(f"the journal ends at serial {new.serial}, not {wanted}")
        new.chunks = [chunk.seal() if i in copied else chunk for i, chunk in enumerate(new.chunks) if chunk.entries]
        new._rows = new._open = None
        new.complete = True
        return new

    def _drop(self, owner, rdtype, copied):
        if rdtype == dns.rdatatype.SOA and owner == self.origin_text:
            return  # replaced by the change's new SOA
        node = self.nodes.get(owner, _EMPTY)
        if rdtype not in node:
            raise ValueError(f"the journal removes {owner} {dns.rdatatype.to_text(rdtype)}, which is not there")
        entry = node[rdtype]
        node = {t: v for t, v in node.items() if t != rdtype}
        if node:
            self.nodes[owner] = node
        else:
            del self.nodes[owner]
            self._name_removed(owner)
        self.records -= _count(entry)
        self.weight -= 2 * len(entry) + RRSET_OVERHEAD
        for i, chunk in enumerate(self.chunks):
            if rdtype in chunk.entries.get(owner, _EMPTY):
                chunk = self._writable(i, copied)
                rest = {t: v for t, v in chunk.entries[owner].items() if t != rdtype}
                chunk.size -= sum(len(piece) - 2 for piece in _pieces_of(chunk.entries[owner][rdtype]))
                if rest:
                    chunk.entries[owner] = rest
                else:
                    del chunk.entries[owner]
                return

    def _place(self, owner, rdtype, ttl, records, copied):
        if rdtype in self.nodes.get(owner, _EMPTY) and not (rdtype == dns.rdatatype.SOA and owner == self.origin_text):
            raise ValueError(f"the journal adds {owner} {dns.rdatatype.to_text(rdtype)}, which is there already")
        pieces = self._wire(owner, rdtype, ttl, records)
        if owner in self.nodes:
            self.nodes[owner] = dict(self.nodes[owner])  # the old zone keeps its own
            if rdtype == dns.rdatatype.SOA and owner == self.origin_text:
                entry = self.nodes[owner].pop(rdtype)
                self.records -= _count(entry)
                self.weight -= 2 * len(entry) + RRSET_OVERHEAD
        if self._put_node(owner, rdtype, pieces):
            return
        size = sum(len(piece) - 2 for piece in pieces)
        last = len(self.chunks) - 1
        if last < 0 or self.chunks[last].size + size > CHUNK_BYTES:
            self.chunks.append(_Chunk())
            last += 1
        chunk = self._writable(last, copied)
        value = pieces[0] if len(pieces) == 1 else tuple(pieces)
        chunk.entries[owner] = {**chunk.entries.get(owner, _EMPTY), rdtype: value}
        chunk.size += size

    def _writable(self, i, copied) -> _Chunk:
        if i not in copied:
            self.chunks[i] = self.chunks[i].copy()
            copied.add(i)
        return self.chunks[i]

    # -- reading --
    def _rrset(self, entry: bytes) -> dns.rrset.RRset:
        """An RRset back from its wire form (in a message whose question is the origin)."""
        header = struct.pack("!HHHHHH", 0, 0, 1, _count(entry), 0, 0)
        message = header + self.origin_wire + b"\x00\x06\x00\x01" + entry[2:]
        return dns.message.from_wire(message).answer[0]

    def answer(self, qname: dns.name.Name, rdtype: int, response: dns.message.Message):
        """Fill `response` like an authoritative server: answer, referral, NODATA or NXDOMAIN."""
        chain, name = [], qname  # qname and its ancestors below the apex, as (name, text)
        while len(name) > len(self.origin):
            chain.append((name, name.to_text().lower()))
            name = name.parent()
        cut = None
        for name, text in chain:  # the highest NS below the apex is the cut (DS at the cut is ours)
            ns = self.nodes.get(text, _EMPTY).get(dns.rdatatype.NS)
            if ns is not None and not (name == qname and rdtype == dns.rdatatype.DS):
                cut = ns
        if cut is not None:  # below a zone cut the child is authoritative: refer, without AA
            cut = self._rrset(cut)
            response.authority.append(cut)
            response.additional.extend(self._glue(cut))
            return
        response.flags |= dns.flags.AA
        qtext = chain[0][1] if chain else self.origin_text
        node, renamed = self.nodes.get(qtext), False
        if node is None and qtext in self.names:
            node = _EMPTY
        if node is None:
            node = self._wildcard(chain)
            renamed = node is not None

        def rrset(entry):
            found = self._rrset(entry)
            return dns.rrset.from_rdata_list(qname, found.ttl, list(found)) if renamed else found

        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif rdtype == dns.rdatatype.ANY:
            response.answer.extend(rrset(entry) for entry in node.values())
        elif rdtype in node:
            response.answer.append(rrset(node[rdtype]))
        elif dns.rdatatype.CNAME in node:
            response.answer.append(rrset(node[dns.rdatatype.CNAME]))
        if not response.answer:
            response.authority.append(self.negative_soa())

    def negative_soa(self) -> dns.rrset.RRset:
        """The SOA for a negative answer, with the negative-caching TTL (RFC 2308)."""
        return dns.rrset.from_rdata(self.origin, min(self.soa.ttl, self.soa[0].minimum), self.soa[0])

    def _glue(self, cut):
        glue = []
        for ns in cut:
            node = self.nodes.get(ns.target.to_text().lower(), _EMPTY)
            glue.extend(self._rrset(node[t]) for t in (dns.rdatatype.A, dns.rdatatype.AAAA) if t in node)
        return glue

    def _wildcard(self, chain):
        """RFC 4592: the node of `*.<closest encloser>` (its RRsets answer renamed), or None."""
        encloser = next((text for _, text in chain[1:] if text in self.names), self.origin_text)
        return self.nodes.get("*." + encloser)


def _parent(text: str) -> str:
    """The parent's text of an absolute name's text ("" above the root)."""
    if "\\" in text:
        name = dns.name.from_text(text)
        return name.parent().to_text().lower() if len(name) > 1 else ""
    rest = text.split(".", 1)[1] if "." in text else ""
    return rest or ("." if text != "." else "")


def _rrsets(origin: dns.name.Name, rows) -> list[dns.rrset.RRset]:
    """RRsets from rows of (owner, type, ttl, [rdata text])."""
    return [dns.rrset.from_text_list(dns.name.from_text(owner), ttl, dns.rdataclass.IN, rtype, records,
                                     origin=origin, relativize=False)
            for owner, rtype, ttl, records in rows]


class _Envelope:
    """What every message of one transfer shares: the header and question of the answer to `query`, its
    OPT, and the TSIG state that chains each message's MAC to the one before (RFC 8945 5.3.1)."""

    def __init__(self, query: dns.message.Message):
        question = query.question[0]
        self.id, self.flags = query.id, dns.flags.QR | dns.flags.AA | (query.flags & dns.flags.RD)
        self.question = question.name.to_wire() + struct.pack("!HH", question.rdtype, question.rdclass)
        self.opt = _OPT if query.edns >= 0 else b""
        self.key = self.context = None
        if query.had_tsig and query.keyring:
            signed = dns.message.make_response(query)  # the TSIG the answer carries, as dnspython makes it
            self.key, self.keyname, self.tsig, self.request_mac = (signed.keyring, signed.keyname, signed.tsig[0],
                                                                   signed.request_mac)

    def message(self, parts: list[bytes], count: int) -> bytes:
        extra = 1 if self.opt else 0
        wire = b"".join([struct.pack("!HHHHHH", self.id, self.flags, 1, count, 0, extra), self.question, *parts,
                         self.opt])
        if self.key is None:
            return wire
        tsig, self.context = dns.tsig.sign(wire, self.key, self.tsig, int(time.time()), self.request_mac,
                                           self.context, True)
        record = io.BytesIO()
        dns.rrset.from_rdata(self.keyname, 0, tsig).to_wire(record)
        return wire[:10] + struct.pack("!H", extra + 1) + wire[12:] + record.getvalue()


# --- the core -------------------------------------------------------------------------------


class MiniDNS:
    """Answers QUERY opcode messages for the live zones of `source` (see the module docstring).

    Rendered zones are kept in an LRU bounded by their estimated bytes (`cache_bytes`); `renders`
    counts zones made (read whole, or from the journal) and `full_renders` those read whole (tests use
    them). Safe to call `handle` from many threads at once.
    """

    RETRY_FAILED = 5.0  # seconds before a zone whose render failed at a serial is tried again
    BIG = 5000  # records: a query to a zone this big answers from its last complete serial meanwhile
    MAX_SOAS = 100_000  # SOAs kept apart from renders

    def __init__(self, source: ZoneSource | None = None, *, keys: KeySource | None = None,
                 cache_bytes: int = 512 * 2**20, transfers=None):
        self.source = source if source is not None else DatabaseZoneSource()
        # TSIG keys come from the database when zones do; a source given alone means no TSIG.
        self.keys = keys if keys is not None or source is not None else self.source
        self.cache_bytes = cache_bytes
        self.renders = self.full_renders = 0
        self._cache: collections.OrderedDict[object, RenderedZone] = collections.OrderedDict()
        self._origins: dict[str, object] = {}  # cached zones by name (for `changed`)
        self._weight = 0
        self._building: dict[object, RenderedZone] = {}  # full renders under way, streaming in
        self._starting: dict[object, threading.Lock] = {}  # one thread at a time starts a zone's render
        self._soas: dict[object, dns.rrset.RRset] = {}
        self._failed: dict[object, tuple[int, float]] = {}  # zone -> (serial, retry after)
        self._logged: collections.OrderedDict = collections.OrderedDict()  # (zone, serial) whose failure was logged
        self._lock = threading.Lock()
        self._ahead: queue.SimpleQueue | None = None
        self._allow: dict | None = None
        self._allow_lock = threading.Lock()
        self._allow_reads = 0  # reads of the allow-list started
        self.transfers = transfers  # a workers.transfers.Recorder: what the secondaries asked for, in Redis

    # -- entry point --
    def handle(self, wire: bytes, peer: tuple[str, int], tcp: bool) -> Iterable[bytes]:
        """The response messages for one query; empty means send nothing. Never raises. A transfer's
        messages come as a lazy iterator (the first at once, the rest as the caller pulls them, each
        next() maybe waiting for the zone's render): pull it in a worker thread, never on an event loop."""
        try:
            query = dns.message.from_wire(wire, keyring=self._keyring if self.keys is not None else None)
        except dns.message.ShortHeader:
            return []  # not even a header to answer to
        except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature, dns.tsig.BadTime, dns.tsig.BadAlgorithm) as exc:
            log.info("MiniDNS: TSIG check failed for a query from %s: %s", peer[0], type(exc).__name__)
            return _header_only(wire, dns.rcode.NOTAUTH)  # RFC 8945 5.2: unknown key, bad MAC or time
        except Exception as exc:  # noqa: BLE001 - any unparsable packet is the sender's problem
            log.debug("MiniDNS: malformed query from %s: %s", peer, exc)
            return _header_only(wire, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return []  # never answer a response: no loops
        try:
            return self._respond(query, peer, tcp)
        except RenderFailed:  # logged once when it failed
            return [_error(query, dns.rcode.SERVFAIL)]
        except Exception:  # noqa: BLE001 - one bad zone or a DB hiccup must not kill the server
            log.exception("MiniDNS: could not answer %s from %s", query.question, peer)
            try:
                return [_error(query, dns.rcode.SERVFAIL)]
            except Exception:  # noqa: BLE001 - even the error answer failed: the bare header will do
                return _header_only(wire, dns.rcode.SERVFAIL)

    def answer_from_memory(self, wire: bytes, peer, tcp: bool) -> list[bytes] | None:
        """The answer to a plain SOA query when everything it needs is in memory (the zone's name and
        serial kept current by the source, its SOA by serial), without any I/O or render, so the
        transport may answer it on its event loop; None otherwise (then `handle` in a worker thread)."""
        find_cached = getattr(self.source, "find_cached", None)
        if find_cached is None or len(wire) < 12 or wire[10] or wire[11] > 1:  # at most an OPT (BIND9's has one)
            return None
        try:
            query = dns.message.from_wire(wire)  # without a keyring a TSIG raises: handle() checks it
        except Exception:  # noqa: BLE001 - handle() answers what cannot be parsed
            return None
        if query.had_tsig:
            return None
        question = query.question[0] if len(query.question) == 1 else None
        if (query.flags & dns.flags.QR or query.opcode() != dns.opcode.QUERY or question is None
                or question.rdtype != dns.rdatatype.SOA or question.rdclass != dns.rdataclass.IN):
            return None
        names, name = [], question.name
        while len(name) > 1:
            names.append(name.to_text().lower())
            name = name.parent()
        found = find_cached(names) if names else {}
        if found is None:
            return None
        zone = next(((dns.name.from_text(text), *found[text]) for text in names if text in found), None)
        if zone is None:
            return [_error(query, dns.rcode.REFUSED)]
        if zone[0] != question.name:
            return None  # SOA below the apex: a NODATA, from the rendered zone
        with self._lock:  # a rendered zone's SOA is wire already: the answer is its header, question and that
            rendered = next((z for z in (self._cache.get(zone[1]), self._building.get(zone[1]))
                             if z is not None and z.soa_wire and not is_newer(zone[2], z.serial)), None)
        if rendered is not None:
            self._note_soa(zone[1], peer[0], zone[2])
            return [_Envelope(query).message([rendered.soa_wire], 1)]
        soa = self._soa_in_memory(zone[1], zone[2])
        if soa is None:
            return None
        self._note_soa(zone[1], peer[0], zone[2])
        return [self._soa_only(query, soa, tcp)]

    def _respond(self, query, peer, tcp) -> Iterable[bytes]:
        if query.opcode() != dns.opcode.QUERY:
            return [_error(query, dns.rcode.NOTIMP)]  # NOTIFY and UPDATE are not for a primary
        if len(query.question) != 1:
            return [_error(query, dns.rcode.FORMERR)]
        question = query.question[0]
        qname, rdtype = question.name, question.rdtype
        if question.rdclass != dns.rdataclass.IN:
            return [_error(query, dns.rcode.REFUSED)]
        if rdtype == dns.rdatatype.AXFR and not tcp:
            return [_error(query, dns.rcode.FORMERR)]  # RFC 5936: AXFR is TCP only
        if rdtype in XFR_TYPES and not self._may_transfer(peer[0]):  # no pool's server: no need to look further
            log.info("MiniDNS: refused %s of %s to %s", dns.rdatatype.to_text(rdtype), qname, peer[0])
            return [_error(query, dns.rcode.REFUSED)]
        found = self._zone_for(qname)
        if found is None or (rdtype in XFR_TYPES and found[0] != qname):
            return [_error(query, dns.rcode.REFUSED)]
        origin, zone_id, serial = found
        if rdtype in XFR_TYPES and not self._may_transfer(peer[0], self.source.pool_of(zone_id)):
            log.info("MiniDNS: refused %s of %s to %s: not a server of its pool", dns.rdatatype.to_text(rdtype),
                     qname, peer[0])
            return [_error(query, dns.rcode.REFUSED)]
        if rdtype in XFR_TYPES and not self._signed_as_required(query, zone_id):
            log.info("MiniDNS: refused %s of %s to %s: not signed with a key of its pool",
                     dns.rdatatype.to_text(rdtype), qname, peer[0])
            return [_error(query, dns.rcode.REFUSED)]
        if rdtype in XFR_TYPES and self.transfers is not None:
            return self._noted_transfer(query, found, peer, tcp)
        if rdtype == dns.rdatatype.SOA and qname == origin:
            self._note_soa(zone_id, peer[0], serial)
        if rdtype in XFR_TYPES:
            return self._transfer(query, origin, zone_id, serial, tcp)
        if rdtype == dns.rdatatype.SOA and qname == origin:  # never waits for a render
            return [self._soa_only(query, self.soa(zone_id, serial, origin), tcp)]
        response = dns.message.make_response(query)
        self._for_query(zone_id, serial).answer(qname, rdtype, response)
        if rdtype == dns.rdatatype.ANY:
            del response.answer[1:]  # RFC 8482: one RRset is enough of an answer, and no amplifier
        return [_fit(response, query, tcp)]

    def _noted_transfer(self, query, found, peer, tcp):
        """The transfer, noted as running from now on (its render included); the transport notes its end."""
        client = next((rrset[0].serial for rrset in query.authority
                       if rrset.rdtype == dns.rdatatype.SOA and len(rrset)), None)
        rdtype = dns.rdatatype.to_text(query.question[0].rdtype)
        transfer = self.transfers.transfer(found[1], peer[0], rdtype, found[2], client, [])
        try:
            transfer.messages = self._transfer(query, *found, tcp)
        except Exception as exc:
            transfer.finished(0, 0, f"could not answer: {type(exc).__name__}")
            raise
        return transfer

    def _note_soa(self, zone_id, address: str, serial: int):
        """A pool's server asking the zone's SOA (after a NOTIFY): the polls take it for a transfer about
        to start. Noting only queues the event (workers.transfers), so the quick path may call it."""
        if self.transfers is not None and self.allowed(address):
            self.transfers.soa(zone_id, address, serial)

    def _zone_for(self, qname: dns.name.Name):
        """(origin, zone id, serial) of the closest enclosing live zone, by exact names: one query."""
        names, name = [], qname
        while len(name) > 1:  # up to, not including, the root
            names.append(name.to_text().lower())
            name = name.parent()
        found = self.source.find(names) if names else {}
        for text in names:
            if text in found:
                return (dns.name.from_text(text), *found[text])
        return None

    # -- TSIG --
    def _keyring(self, message, keyname: dns.name.Name):
        """dnspython's keyring callback: the key a signed query names, looked up when it arrives."""
        found = self.keys.tsig_key(keyname.to_text(omit_final_dot=True))
        return found and dns.tsig.Key(keyname, found["secret"], found["algorithm"])

    def _signed_as_required(self, query, zone_id) -> bool:
        """A zone whose pool or targets have keys transfers only to queries signed with one of them."""
        required = self.keys.transfer_keys(zone_id) if self.keys is not None else set()
        if not required:
            return True
        return query.had_tsig and query.keyname.to_text(omit_final_dot=True).lower() in required

    # -- transfers --
    def _transfer(self, query, origin, zone_id, serial, tcp: bool) -> Iterable[bytes]:
        """RFC 1995. IXFR from a client at our serial (or newer): just our SOA. From an older serial the
        journal knows: the condensed difference, over TCP, or over UDP if it fits in one message (else
        just our SOA: the client retries over TCP). Otherwise AXFR-style (over UDP, just our SOA).
        None of this waits for a render but the AXFR-style answer, which streams as the zone renders."""
        if query.question[0].rdtype == dns.rdatatype.IXFR:
            soa = self._soa_piece(zone_id, serial, origin)

            def just_soa():  # one small record: fits any UDP answer
                return [_Envelope(query).message([soa[2:]], 1)]

            client = next((rrset[0].serial for rrset in query.authority
                           if rrset.rdtype == dns.rdatatype.SOA and len(rrset)), None)
            if client is not None and not is_newer(_serial_of(soa), client):
                return just_soa()
            difference = self._difference(zone_id, client, origin, soa) if client is not None else None
            if difference is not None and tcp:
                return self._stream(query, difference)
            if difference is not None:
                fits = self._one_message(query, difference)
                if fits is not None:
                    return [fits]
            if not tcp:
                return just_soa()
        return self._axfr(query, self.zone(zone_id, serial))

    def _soa_piece(self, zone_id, serial: int, origin) -> bytes:
        """The zone's SOA at `serial` (or newer) as a piece (see _count), without waiting for a render:
        a rendered zone's as it is, else written from soa()."""
        with self._lock:
            for zone in (self._cache.get(zone_id), self._building.get(zone_id)):
                if zone is not None and zone.soa_wire and not is_newer(serial, zone.serial):
                    return zone._soa_entry
        soa = self.soa(zone_id, serial, origin)
        wire = RenderedZone(origin.to_text())
        return wire._wire(wire.origin_text, dns.rdatatype.SOA, soa.ttl, [soa[0].to_text()])[0]

    def _soa_only(self, query, soa: dns.rrset.RRset, tcp: bool) -> bytes:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer.append(soa)
        return _fit(response, query, tcp)

    def _difference(self, zone_id, client: int, origin, soa: bytes) -> list[bytes] | None:
        """The IXFR's RRsets from the client's serial to the zone's, as wire pieces like a rendered zone's
        (see _count): our SOA, the client's SOA, what went, our SOA, what came, our SOA. None when the
        journal does not know the way, or when its difference holds more records than the zone (then
        AXFR-style is the smaller answer)."""
        found = self.source.ixfr(zone_id, client, _serial_of(soa))
        if found is None:
            return None
        wire = RenderedZone(origin.to_text())  # writes RRsets as the zone's renders do; holds nothing
        removed, added = ([piece for owner, rtype, ttl, records in rows
                           for piece in wire._wire(owner.lower(), _rdtype(rtype), ttl, records)] for rows in found)
        if added[0] != soa:
            return None
        size = self._size(zone_id, _serial_of(soa))
        if size is not None and sum(map(_count, removed + added)) > size:
            return None
        return [soa, *removed, *added, soa]

    def _size(self, zone_id, serial) -> int | None:
        """Records in the zone at `serial` if that is known without reading the zone: rendered, or made
        from a rendered serial and the journal (a few ms); else None."""
        with self._lock:
            rendered = self._cache.get(zone_id)
        if rendered is None:
            return None
        if rendered.serial != serial:
            try:
                rendered = self.zone(zone_id, serial)
            except RenderFailed:
                return None
        return rendered.records if rendered.complete else None

    def _one_message(self, query, pieces) -> bytes | None:
        """All pieces in one UDP answer, if it fits in what the client takes; else None."""
        if sum(len(piece) - 2 for piece in pieces) > _udp_size(query):
            return None
        wire = _Envelope(query).message([piece[2:] for piece in pieces], sum(map(_count, pieces)))
        return wire if len(wire) <= _udp_size(query) else None

    def _stream(self, query, pieces) -> list[bytes]:
        """An IXFR's pieces packed greedily into messages of at most CHUNK_BYTES of records, each signed
        in turn when the query was (see _Envelope)."""
        envelope, messages, parts, used, count = _Envelope(query), [], [], 0, 0
        for piece in pieces:
            if parts and used + len(piece) - 2 > CHUNK_BYTES:
                messages.append(envelope.message(parts, count))
                parts, used, count = [], 0, 0
            parts.append(piece[2:])
            used, count = used + len(piece) - 2, count + _count(piece)
        messages.append(envelope.message(parts, count))
        return messages

    def _axfr(self, query, zone: RenderedZone) -> Iterator[bytes]:
        """The zone's prepared chunks, each in the header and question of this query: the SOA before the
        first and after the last. A zone still rendering streams: each chunk goes once the next one is
        made (or the zone is complete), so the last message is known to be the last."""
        try:
            envelope, sent, closed = _Envelope(query), 0, False
            zone.advance(lambda: zone.soa_wire)
        except Exception as exc:  # noqa: BLE001 - nothing sent yet: SERVFAIL says it
            if not isinstance(exc, RenderFailed):  # a render failure is logged once, where it failed
                log.exception("MiniDNS: could not start a transfer of %s", zone.origin_text)
            yield _error(query, dns.rcode.SERVFAIL)
            return
        soa, i = zone.soa_wire, 0
        while True:
            zone.advance(lambda: len(zone.chunks) > i + 1)
            if i >= len(zone.chunks):
                break
            bodies, last = zone.chunks[i].bodies, zone.complete and i == len(zone.chunks) - 1
            for j, (body, count) in enumerate(bodies):
                alone = len(body) + 2 * len(soa) > CHUNK_BYTES  # a record near 64 KiB: the SOAs go apart
                parts = [body]
                if not sent:
                    if alone:
                        yield envelope.message([soa], 1)
                    else:
                        parts.insert(0, soa)
                        count += 1
                if last and j == len(bodies) - 1 and not alone:
                    parts.append(soa)
                    count, closed = count + 1, True
                sent += 1
                yield envelope.message(parts, count)
            i += 1
        if not closed:
            yield envelope.message([soa] if sent else [soa, soa], 1 if sent else 2)

    # -- transfer ACL --
    _ANY_POOL = object()

    def allowed(self, address: str, pool=_ANY_POOL) -> bool:
        """May `address` transfer the zones of `pool` (without one: of some pool)? The pool's servers and
        MINIDNS_ALLOW_XFR_FROM may; loopback only as one of those."""
        if self._allow is None:
            self.refresh_allow_list()  # first use without a transport refreshing it (tests, shells)
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if pool is self._ANY_POOL:
            lists = self._allow.values()
        else:
            lists = (self._allow.get(None, ()), self._allow.get(pool, ()) if pool is not None else ())
        return any(ip in network for networks in lists for network in networks)

    def refresh_allow_list(self):
        """Re-read the pools' hosts. The transport calls this every 30 s, and a refused transfer does (see
        _may_transfer); one read at a time, so an older read never replaces a newer one."""
        with self._allow_lock:
            self._read_allow_list()

    def _read_allow_list(self):
        self._allow_reads += 1  # under _allow_lock: a read started (see _may_transfer)
        hosts = self.source.xfr_hosts()
        if not isinstance(hosts, dict):
            hosts = {None: hosts}
        self._allow = {pool: [network for host in sorted(set(h)) for network in _networks(host)]
                       for pool, h in hosts.items()}

    def _may_transfer(self, address: str, pool=_ANY_POOL) -> bool:
        """allowed(), re-reading the pools first when it says no: a server just added to a pool transfers
        at once (BIND9 backs off for a minute after a refusal). Refusals that wait for the same read share
        it: a read that started after this refusal answers it too, so strangers cost one read at a time,
        and a new pool's servers asking at once are not refused while one of them reads (seen in CI)."""
        if self.allowed(address, pool):
            return True
        seen = self._allow_reads
        with self._allow_lock:
            if self._allow_reads == seen:  # no read started since the refusal: one before it may predate the pool
                self._read_allow_list()
        return self.allowed(address, pool)

    # -- the cache --
    def soa(self, zone_id, serial: int, origin: dns.name.Name) -> dns.rrset.RRset:
        """The zone's SOA at `serial` (or newer) without waiting for any render: from a rendered zone,
        one under way that has read it, or the SOAs kept by serial; else one indexed read."""
        soa = self._soa_in_memory(zone_id, serial)
        if soa is not None:
            return soa
        found = self.source.soa(zone_id)
        if found is None:
            raise LookupError(f"zone {zone_id} has no SOA")
        soa = _rrsets(origin, [found[1]])[0]
        with self._lock:
            if len(self._soas) >= self.MAX_SOAS:
                self._soas.clear()
            self._soas[zone_id] = soa
        return soa

    def _soa_in_memory(self, zone_id, serial: int) -> dns.rrset.RRset | None:
        with self._lock:
            for zone in (self._cache.get(zone_id), self._building.get(zone_id)):
                if zone is not None and zone.soa_wire and not is_newer(serial, zone.serial):
                    return zone.soa
            soa = self._soas.get(zone_id)
            return soa if soa is not None and not is_newer(serial, soa[0].serial) else None

    def _for_query(self, zone_id, serial: int) -> RenderedZone:
        """A complete zone to answer a query from: at `serial` (or newer), rendered now if need be; for a
        big zone whose new serial is still rendering, its last complete serial meanwhile, so a query
        never waits behind a long render (SOA never renders at all)."""
        zone = self.zone(zone_id, serial)
        if zone.complete:
            return zone
        with self._lock:
            older = self._cache.get(zone_id)
        if older is not None and older.records >= self.BIG:
            return older
        zone.advance(lambda: False)
        return zone

    def zone(self, zone_id, serial: int) -> RenderedZone:
        """The zone at `serial` (or newer): cached; or made now from the cached one and the journal's
        changes since (a few ms, whatever the zone's size); or a full render started and returned while
        it streams in (whoever needs more of it renders more, see RenderedZone.advance), so concurrent
        transfers share one render and one prepared wire form."""
        found = self._current(zone_id, serial)
        if found is not None:
            return found
        with self._lock:
            starting = self._starting.setdefault(zone_id, threading.Lock())
        with starting:
            found = self._current(zone_id, serial)
            if found is not None:
                return found
            try:
                return self._start(zone_id, serial)
            except RenderFailed:
                raise
            except Exception as exc:
                self._render_failed(zone_id, serial, exc)
                raise RenderFailed(str(exc)) from exc

    def _current(self, zone_id, serial) -> RenderedZone | None:
        with self._lock:
            zone = self._cache.get(zone_id)
            if zone is not None and not is_newer(serial, zone.serial):
                self._cache.move_to_end(zone_id)
                return zone
            building = self._building.get(zone_id)
            if building is not None and building.error is None and not is_newer(serial, building.wanted):
                return building
            failed = self._failed.get(zone_id)
            if failed is not None and failed[0] == serial and time.monotonic() < failed[1]:
                raise RenderFailed(f"zone {zone_id} failed to render at serial {serial}")
        return None

    def _start(self, zone_id, serial) -> RenderedZone:
        with self._lock:
            base = self._cache.get(zone_id)
        if base is not None:
            changes = self.source.changes(zone_id, base.serial, serial)
            if changes:
                try:
                    zone = base.apply(changes, serial)
                except ValueError as exc:
                    log.warning("MiniDNS: zone %s: the journal from serial %s does not fit the rendered zone (%s); "
                                "reading it whole", base.origin_text, base.serial, exc)
                else:
                    self._store(zone_id, zone)
                    return zone
        found = self.source.records(zone_id)
        if found is None:
            raise LookupError(f"zone {zone_id} has no records")
        zone = RenderedZone(found[0], serial, iter(found[1]))
        zone.on_done = functools.partial(self._done, zone_id)
        with self._lock:
            self._building[zone_id] = zone
        if base is not None and base.records >= self.BIG:  # queries answer from `base` meanwhile: render ahead
            threading.Thread(target=self._render_ahead, args=(zone,), name="zone-render", daemon=True).start()
        return zone

    def changed(self, name: str):
        """A zone called `name` committed a change (the source's listener says so): bring it to its new
        serial now, in the background, so that the secondaries' SOA queries and transfers find it ready.
        That is a cached zone, or a zone the source knows to be live without a read (a new one: its
        first transfer follows); not a catalog that is not cached."""
        with self._lock:
            known = name in self._origins
        if not known:
            found = getattr(self.source, "find_cached", lambda names: None)([name])
            if not found or isinstance(found[name][0], tuple):
                return
        with self._lock:
            if self._ahead is None:
                self._ahead = queue.SimpleQueue()
                threading.Thread(target=self._keep_ahead, name="zone-render", daemon=True).start()
        self._ahead.put(name)

    def _keep_ahead(self):
        while True:
            name = self._ahead.get()
            try:
                found = self._zone_for(dns.name.from_text(name))
                if found is not None and found[0] == dns.name.from_text(name):
                    self.zone(found[1], found[2]).advance(lambda: False)  # complete: SOA queries answer from memory
            except Exception:  # noqa: BLE001 - a query renders it later (and logs once if it fails)
                log.debug("MiniDNS: could not render %s ahead", name, exc_info=True)
            finally:
                getattr(self.source, "thread_done", lambda ending=True: None)(ending=False)

    def _render_ahead(self, zone: RenderedZone):
        try:
            zone.advance(lambda: False)
        except RenderFailed:
            pass  # logged once by _done
        finally:
            getattr(self.source, "thread_done", lambda: None)()

    def _done(self, zone_id, zone: RenderedZone, error: Exception | None):
        """A full render ended (called once, by whichever thread finished it)."""
        with self._lock:
            if self._building.get(zone_id) is zone:
                del self._building[zone_id]
            self.full_renders += error is None
        if error is None:
            metrics.MINIDNS_RENDER_SECONDS.observe(time.perf_counter() - zone.started)
            self._store(zone_id, zone)
        else:
            self._render_failed(zone_id, zone.wanted, error)

    def _render_failed(self, zone_id, serial, error: Exception):
        """Logged once per zone and serial; the zone answers SERVFAIL at that serial for RETRY_FAILED
        seconds, then the render is tried again (quietly, unless it fails at a new serial)."""
        with self._lock:
            self._failed[zone_id] = (serial, time.monotonic() + self.RETRY_FAILED)
            first = (zone_id, serial) not in self._logged
            self._logged[(zone_id, serial)] = None
            while len(self._logged) > 10_000:
                self._logged.popitem(last=False)
        if first:
            log.error("MiniDNS: cannot render zone %s at serial %s: %s", zone_id, serial, error,
                      exc_info=(type(error), error, error.__traceback__))
        else:
            log.debug("MiniDNS: zone %s at serial %s still fails to render: %s", zone_id, serial, error)

    def _store(self, zone_id, zone: RenderedZone):
        with self._lock:
            self.renders += 1
            self._failed.pop(zone_id, None)
            old = self._cache.pop(zone_id, None)
            if old is not None:
                self._weight -= old.weight
                if is_newer(old.serial, zone.serial):  # a slower render of an older snapshot lost the race
                    zone = old
            self._cache[zone_id] = zone
            self._origins[zone.origin_text] = zone_id
            self._weight += zone.weight
            while self._weight > self.cache_bytes and len(self._cache) > 1:
                evicted_id, evicted = self._cache.popitem(last=False)
                self._weight -= evicted.weight
                if self._origins.get(evicted.origin_text) == evicted_id:
                    del self._origins[evicted.origin_text]


def _networks(host: str) -> list:
    try:
        return [ipaddress.ip_network(host, strict=False)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        log.warning("MiniDNS: cannot resolve transfer host %r: %s", host, exc)
        return []
    return [ipaddress.ip_network(info[4][0].split("%")[0]) for info in infos]


def _udp_size(query: dns.message.Message) -> int:
    return 512 if query.edns < 0 else min(UDP_MAX, max(512, query.payload))


def _fit(response: dns.message.Message, query: dns.message.Message, tcp: bool) -> bytes:
    """Render within what the client can take; over UDP a bigger answer is truncated (TC set)."""
    return response.to_wire(max_size=MAX_MESSAGE if tcp else _udp_size(query), prefer_truncation=True)


def _error(query: dns.message.Message, rcode: int) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response.to_wire()


def _header_only(wire: bytes, rcode: int) -> list[bytes]:
    """An answer to a query we could not parse: its id, opcode and RD echoed, nothing else."""
    qid, flags = struct.unpack("!HH", wire[:4])
    if flags & dns.flags.QR:
        return []
    flags = dns.flags.QR | (flags & (_OPCODE_MASK | dns.flags.RD)) | rcode
    return [struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)]


# --- the transport -----------------------------------------------------------------------------


def _in_worker(fn, *args):
    """Runs in a pool thread: drop broken or expired DB connections around the call, much as Django
    does around a request (with CONN_MAX_AGE=0 this closes the connection after each call), but without
    a health check per call (see _tidy_connection)."""
    _tidy_connection()
    try:
        return fn(*args)
    finally:
        _tidy_connection()


def _all_of(answers):
    """A UDP answer's messages as a list (handle may answer with a lazy iterable), in the pool thread."""
    if hasattr(answers, "finished"):
        answers.messages = list(answers.messages)
        return answers
    return answers if isinstance(answers, list) else list(answers)


def _finished(answers, sent_bytes, messages, error=""):
    if hasattr(answers, "finished"):
        answers.finished(sent_bytes, messages, error)


def _plausible_query(wire: bytes) -> bool:
    """Cheap checks on the loop, before the thread pool: a standard query has one question, a
    well-formed name in it, no answers, at most an SOA in authority (IXFR) and an OPT and a TSIG."""
    qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
    if qd != 1 or an or ns > 1 or ar > 2:
        return False
    offset, length = 12, len(wire)
    while offset < length and wire[offset]:
        if wire[offset] > 63:  # a compression pointer cannot point anywhere from the first name
            return False
        offset += wire[offset] + 1
    return offset + 5 <= length and offset - 12 < 255


class _UDP:
    """A datagram in, its answer out; answering runs in the pool, so the loop keeps receiving.

    The loop drains the socket (up to `batch` datagrams per wake-up, not asyncio's one) and turns
    garbage away right there (dropped: no header, a response, or a QUERY whose question does not
    parse), so a burst of it neither overflows the receive buffer nor takes the pool's room."""

    def __init__(self, sock: socket.socket, submit, max_pending: int = 4096, batch: int = 256, quick=None):
        self.sock, self.submit, self.max_pending, self.batch = sock, submit, max_pending, batch
        self.quick = quick  # answers what it can on the loop (SOA from memory), else None
        self.pending = self.garbage = 0
        self.closing = False

    def readable(self):
        for _ in range(self.batch):
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error for an earlier answer: nothing to read here
                continue
            self.datagram_received(data, addr)

    def datagram_received(self, data, addr):
        if len(data) < 12 or data[2] & 0x80:
            self.garbage += 1
            return
        opcode = (data[2] & 0x78) >> 3
        if opcode != dns.opcode.QUERY:  # NOTIFY, UPDATE, ... are not for a primary; unassigned ones are garbage
            self.garbage += 1
            if opcode in _KNOWN_OPCODES:
                self._sendto(_header_only(data, dns.rcode.NOTIMP)[0], addr)
            return
        if not _plausible_query(data):
            self.garbage += 1
            return
        answers = self.quick(data, addr[:2]) if self.quick is not None else None
        if answers is not None:  # an SOA answered from memory, on the loop: no thread hand-offs
            for wire in answers:
                self._sendto(wire, addr)
            return
        if self.pending >= self.max_pending:
            return  # overloaded: drop, the client retries
        self.pending += 1
        self.submit(data, addr[:2], False).add_done_callback(functools.partial(self._send, addr))

    def _send(self, addr, future):
        self.pending -= 1
        if future.cancelled() or self.closing:
            return
        if future.exception() is not None:
            log.error("MiniDNS: UDP query from %s failed: %r", addr, future.exception())
            return
        answers = future.result()
        for wire in answers:
            self._sendto(wire, addr)
        _finished(answers, sum(len(w) for w in answers), len(answers))

    def _sendto(self, wire, addr):
        try:
            self.sock.sendto(wire, addr)
        except OSError:  # a full send buffer or an unreachable client: UDP may lose it, the client retries
            pass


_KNOWN_OPCODES = {dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE}
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform == "linux" else None)  # not in Python's module


def _receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a `size`-byte receive buffer (beyond net.core.rmem_max when allowed to); the size granted."""
    for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            continue
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class _Limits:
    """TCP connections held at once, in all and per source address."""

    def __init__(self, total: int, per_address: int):
        self.total, self.per_address = total, per_address
        self.held: collections.Counter = collections.Counter()
        self.refused = 0
        self._complained = 0.0

    def take(self, address: str) -> bool:
        if sum(self.held.values()) >= self.total or self.held[address] >= self.per_address:
            self.refused += 1
            if time.monotonic() - self._complained > 60:
                self._complained = time.monotonic()
                log.warning("MiniDNS: TCP connection from %s refused: %d held (at most %d, %d per address)",
                            address, sum(self.held.values()), self.total, self.per_address)
            return False
        self.held[address] += 1
        return True

    def give_back(self, address: str):
        self.held[address] -= 1
        if self.held[address] <= 0:
            del self.held[address]


async def serve(host: str, port: int, minidns: MiniDNS, *, ready=None, stop: asyncio.Event | None = None,
                workers: int = 16, idle_timeout: float = 30.0, allow_refresh: float = 30.0, backlog: int = 1024,
                max_tcp: int = 512, max_tcp_per_address: int = 64, write_timeout: float = 10.0,
                udp_buffer: int = 4 * 1024 * 1024, limits: dict | None = None):
    """Answer on UDP and TCP host:port (port 0: any free port) until `stop` is set or cancelled.

    The loop only moves bytes: `minidns.handle` runs in a pool of `workers` threads, because it
    reads the database, and so does each next() of an answer that comes as a lazy iterable. The
    backlog is large because secondaries open many transfer connections at once when zones are added
    in bulk. A TCP client holds one of `max_tcp` connections (`max_tcp_per_address` from one address;
    beyond that it is cut at once) for at most `idle_timeout` s between queries and `write_timeout` s
    per message it does not read. `ready(host, port)` is called once both sockets are bound; `limits`,
    if given, is filled with the live _Limits and _UDP (tests read them).
    """
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="minidns")
    stop = stop or asyncio.Event()
    clients: dict[asyncio.Task, asyncio.StreamWriter] = {}
    held = _Limits(max_tcp, max_tcp_per_address)

    def submit(wire, peer, tcp):
        return loop.run_in_executor(pool, _in_worker, metrics.observe_minidns, minidns.handle, wire, peer, tcp)

    def quick(wire, peer):
        answers = minidns.answer_from_memory(wire, peer, False)
        return None if answers is None else metrics.observe_minidns(lambda *_: answers, wire, peer, False)

    def submit_udp(wire, peer, tcp):
        return loop.run_in_executor(pool, _in_worker, lambda: _all_of(metrics.observe_minidns(
            minidns.handle, wire, peer, tcp)))

    async def send_all(writer, answers) -> int:
        """Write each message within write_timeout (pulling a lazy one's next() in the pool); the count."""
        messages = getattr(answers, "messages", answers)
        lazy = not isinstance(messages, (list, tuple))
        it, sent, size = iter(messages), 0, 0
        try:
            while True:
                try:
                    wire = await loop.run_in_executor(pool, next, it, None) if lazy else next(it, None)
                except Exception as exc:  # noqa: BLE001 - e.g. the zone's render failed (logged once there)
                    raise ConnectionError(f"transfer ended: {exc}") from exc
                if wire is None:
                    break
                writer.write(struct.pack("!H", len(wire)) + wire)
                async with asyncio.timeout(write_timeout):  # not wait_for: that makes a task per message
                    await writer.drain()
                sent, size = sent + 1, size + len(wire)
        except asyncio.TimeoutError:
            _finished(answers, size, sent, f"client stopped reading (no progress in {write_timeout:g} s)")
            raise
        except Exception as exc:
            _finished(answers, size, sent, f"cut short: {type(exc).__name__}")
            raise
        _finished(answers, size, sent)
        return sent

    async def tcp_client(reader, writer):
        """RFC 7766: 2-byte length prefix, several queries per connection, closed when idle."""
        peer = writer.get_extra_info("peername")[:2]
        if not held.take(peer[0]):
            writer.transport.abort()
            return
        clients[asyncio.current_task()] = writer
        try:
            while True:
                async with asyncio.timeout(idle_timeout):
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                async with asyncio.timeout(idle_timeout):
                    query = await reader.readexactly(length)
                answers = await submit(query, peer, True)
                if not await send_all(writer, answers):
                    break  # unparsable: the stream cannot be trusted any more
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001 - a failed answer costs its connection, never the server
            log.exception("MiniDNS: TCP client %s failed", peer[0])
        finally:
            clients.pop(asyncio.current_task(), None)
            held.give_back(peer[0])
            writer.transport.abort()  # close() would wait to flush to a client that may never read

    async def refresh_allow_list():
        while True:
            try:
                await loop.run_in_executor(pool, _in_worker, minidns.refresh_allow_list)
            except Exception:  # noqa: BLE001 - keep the old list; try again later
                log.exception("MiniDNS: could not refresh the transfer allow-list")
            await asyncio.sleep(allow_refresh)

    tcp_server = udp_sock = udp = refresher = None
    try:
        for _ in range(20 if port == 0 else 1):  # port 0: find one free for both TCP and UDP
            tcp_server = await asyncio.start_server(tcp_client, host, port, backlog=backlog)
            bound = tcp_server.sockets[0].getsockname()[1]
            family = tcp_server.sockets[0].family
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp_sock.bind((host, bound))
                break
            except OSError:
                udp_sock.close()
                udp_sock = None
                tcp_server.close()
                tcp_server = None
                if port:
                    raise
        if udp_sock is None:
            raise OSError(f"no port free for both UDP and TCP on {host}")
        udp_sock.setblocking(False)
        granted = _receive_buffer(udp_sock, udp_buffer)
        udp = _UDP(udp_sock, submit_udp, quick=quick)
        loop.add_reader(udp_sock.fileno(), udp.readable)
        if granted < udp_buffer:
            log.warning("MiniDNS: UDP receive buffer is %d bytes, not %d (raise net.core.rmem_max)",
                        granted, udp_buffer)
        if limits is not None:
            limits.update(tcp=held, udp=udp, udp_buffer=granted)
        refresher = loop.create_task(refresh_allow_list())
        if ready is not None:
            ready(host, bound)
        await stop.wait()
    finally:
        if refresher is not None:
            refresher.cancel()
        if udp is not None:
            udp.closing = True
            loop.remove_reader(udp_sock.fileno())
        if udp_sock is not None:
            udp_sock.close()
        if tcp_server is not None:
            tcp_server.close()
        for writer in clients.values():
            writer.transport.abort()  # the handlers see the connection gone and end on their own
        if clients:
            await asyncio.wait(list(clients), timeout=5)
        pool.shutdown(wait=True, cancel_futures=True)  # no thread outlives the server
