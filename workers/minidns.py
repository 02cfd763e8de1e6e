"""MiniDNS: the small authoritative primary that every target transfers its zones from.

`MiniDNS.handle` turns one query (wire bytes) into the response messages (wire bytes) and
never touches a socket, so tests call it directly. `serve` is a thin asyncio transport
around it. Zones come from a `ZoneSource` (the database by default); each zone is rendered
into dnspython RRsets once per serial and kept in a bounded LRU. IXFR is answered from the
change journal (zones.journal) with one condensed difference, or AXFR-style when the journal
does not reach back to the client's serial.
"""
import asyncio
import collections
import functools
import io
import ipaddress
import logging
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from dnsctl import metrics
from zones.serials import is_newer

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

    def records(self, zone_id) -> tuple[str, list[tuple[str, str, int, list[str]]]] | None:
        """(zone name, [(owner, type, ttl, [rdata text])]) read as one consistent snapshot."""

    def xfr_hosts(self) -> dict[object, Iterable[str]] | Iterable[str]:
        """Who may transfer what: {pool id: addresses, networks or host names of its servers}, with
        the hosts that may transfer every zone under None; a plain list means every zone."""

    def pool_of(self, zone_id) -> object:
        """The pool whose servers may transfer the zone (any value xfr_hosts() uses as a key)."""

    def ixfr(self, zone_id, from_serial: int, to_serial: int) -> tuple[list, list] | None:
        """The condensed difference from from_serial to to_serial as (removed, added) rows like
        records()' (each list starting with its SOA), or None when it is not known (AXFR then)."""


class KeySource(Protocol):
    """Where TSIG keys come from (the database in production)."""

    def tsig_key(self, name: str) -> dict | None:
        """{name, algorithm, secret} of the key called `name` (no trailing dot), or None."""

    def transfer_keys(self, zone_id) -> set[str]:
        """Names (lower case) of the keys that may transfer the zone; empty: no key is required."""


class DatabaseZoneSource:
    """Reads the Django models. Imports are local so the core stays importable without Django."""

    def find(self, names):
        """Zones and pools' catalogs (ids ("catalog", pool id)) in one query. `names` are a query name
        and its ancestors, so a catalog among them means the query is at or below the catalog: then
        only catalogs are returned, and no zone row, whatever its name, answers for a catalog's names."""
        from django.db.models import Value

        from zones.models import Pool, Zone

        zones = (Zone.objects.filter(name__in=names, deleted_at__isnull=True).exclude(action=Zone.Action.DELETE)
                 .annotate(catalog=Value(False)).order_by().values_list("name", "id", "serial", "catalog"))
        catalogs = (Pool.objects.filter(catalog_zone__in=names).annotate(catalog=Value(True)).order_by()
                    .values_list("catalog_zone", "id", "catalog_serial", "catalog"))
        rows = list(zones.union(catalogs, all=True))
        if any(catalog for *_, catalog in rows):
            return {name: (("catalog", pool_id), serial) for name, pool_id, serial, catalog in rows if catalog}
        return {name: (zone_id, serial) for name, zone_id, serial, _ in rows}

    def records(self, zone_id):
        """One SELECT joined to the zone: a single statement sees one snapshot even under READ
        COMMITTED, so the SOA serial always matches the records (and the zone TTL) it is served with."""
        from zones.models import RecordSet

        if isinstance(zone_id, tuple):
            return self._catalog(zone_id[1])

        rows = list(RecordSet.objects.filter(zone_id=zone_id).values_list(
            "zone__name", "zone__ttl", "name", "type", "ttl", "records"))
        if not rows:
            return None
        return rows[0][0], [(name, rtype, zone_ttl if ttl is None else ttl, records)
                            for _, zone_ttl, name, rtype, ttl, records in rows]

    def ixfr(self, zone_id, from_serial, to_serial):
        """From the change journal; catalogs keep none."""
        from zones import journal

        return None if isinstance(zone_id, tuple) else journal.ixfr(zone_id, from_serial, to_serial)

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
        from zones.models import Zone

        return zone_id[1] if isinstance(zone_id, tuple) else (
            Zone.objects.filter(id=zone_id).values_list("pool_id", flat=True).first())

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
        """The keys of the zone's pool and of its targets (a transfer signed with any of them is allowed)."""
        from zones.models import Pool

        catalog = isinstance(zone_id, tuple)
        pools = Pool.objects.filter(id=zone_id[1]) if catalog else Pool.objects.filter(zones__id=zone_id)
        rows = pools.values_list("tsig_key__name", "targets__tsig_key__name")
        return {name.lower() for row in rows for name in row if name}


# --- one zone, rendered -----------------------------------------------------------------------


class RenderedZone:
    """A zone's RRsets (SOA first) and the indexes an authoritative answer needs."""

    def __init__(self, origin: dns.name.Name, rrsets: list[dns.rrset.RRset]):
        self.origin, self.rrsets = origin, rrsets
        self.soa = rrsets[0]
        self.serial = self.soa[0].serial
        self.size = sum(len(rrset) for rrset in rrsets)  # the LRU's weight
        self.nodes: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = collections.defaultdict(dict)
        self.names = set()  # owners and their ancestors: an empty non-terminal is NODATA, not NXDOMAIN
        for rrset in rrsets:
            self.nodes[rrset.name][rrset.rdtype] = rrset
            name = rrset.name
            while name not in self.names and name.is_subdomain(origin):
                self.names.add(name)
                name = name.parent()
        self.nodes = dict(self.nodes)

    @classmethod
    def build(cls, zone_name: str, rows) -> "RenderedZone":
        origin = dns.name.from_text(zone_name)
        rrsets = _rrsets(origin, rows)
        rrsets.sort(key=lambda r: (not (r.rdtype == dns.rdatatype.SOA and r.name == origin), r.name, r.rdtype))
        if not rrsets or rrsets[0].rdtype != dns.rdatatype.SOA or rrsets[0].name != origin:
            raise ValueError(f"zone {zone_name} has no SOA at its apex")
        return cls(origin, rrsets)

    @functools.cached_property
    def xfr_pieces(self) -> list[tuple[dns.rrset.RRset, int]]:
        """The AXFR's pieces (see _pieces): SOA first and last."""
        return _pieces(self.rrsets + [self.soa])

    def answer(self, qname: dns.name.Name, rdtype: int, response: dns.message.Message):
        """Fill `response` like an authoritative server: answer, referral, NODATA or NXDOMAIN."""
        cut = self._delegation(qname, rdtype)
        if cut is not None:  # below a zone cut the child is authoritative: refer, without AA
            response.authority.append(cut)
            response.additional.extend(self._glue(cut))
            return
        response.flags |= dns.flags.AA
        node = self.nodes.get(qname)
        if node is None and qname in self.names:
            node = {}
        if node is None:
            node = self._wildcard(qname)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif rdtype == dns.rdatatype.ANY:
            response.answer.extend(node.values())
        elif rdtype in node:
            response.answer.append(node[rdtype])
        elif dns.rdatatype.CNAME in node:
            response.answer.append(node[dns.rdatatype.CNAME])
        if not response.answer:
            response.authority.append(self.negative_soa())

    def negative_soa(self) -> dns.rrset.RRset:
        """The SOA for a negative answer, with the negative-caching TTL (RFC 2308)."""
        return dns.rrset.from_rdata(self.origin, min(self.soa.ttl, self.soa[0].minimum), self.soa[0])

    def _delegation(self, qname, rdtype):
        """The NS RRset of the highest zone cut between the apex and qname (DS at the cut is ours)."""
        cut, name = None, qname
        while name != self.origin:
            ns = self.nodes.get(name, {}).get(dns.rdatatype.NS)
            if ns is not None and not (name == qname and rdtype == dns.rdatatype.DS):
                cut = ns
            name = name.parent()
        return cut

    def _glue(self, cut):
        node_of = self.nodes.get
        return [rrset for ns in cut for t, rrset in (node_of(ns.target) or {}).items()
                if t in (dns.rdatatype.A, dns.rdatatype.AAAA)]

    def _wildcard(self, qname):
        """RFC 4592: RRsets of `*.<closest encloser>`, renamed to qname; None when there is none."""
        encloser = qname.parent()
        while encloser not in self.names:
            encloser = encloser.parent()
        star = self.nodes.get(dns.name.Name((b"*",) + encloser.labels))
        if star is None:
            return None
        return {t: dns.rrset.from_rdata_list(qname, rrset.ttl, list(rrset)) for t, rrset in star.items()}


def _rrsets(origin: dns.name.Name, rows) -> list[dns.rrset.RRset]:
    """RRsets from rows of (owner, type, ttl, [rdata text])."""
    return [dns.rrset.from_text_list(dns.name.from_text(owner), ttl, dns.rdataclass.IN, rtype, records,
                                     origin=origin, relativize=False)
            for owner, rtype, ttl, records in rows]


def _pieces(rrsets: list[dns.rrset.RRset]) -> list[tuple[dns.rrset.RRset, int]]:
    """(RRset, uncompressed wire size) in transfer order. The size is an upper bound of what the
    RRset adds to a message; an RRset too big for one message is split."""
    pieces = []
    for rrset in rrsets:
        size = _wire_size(rrset)
        if size <= MAX_MESSAGE - 1024:
            pieces.append((rrset, size))
        else:
            for rdata in rrset:
                single = dns.rrset.from_rdata(rrset.name, rrset.ttl, rdata)
                pieces.append((single, _wire_size(single)))
    return pieces


def _wire_size(rrset: dns.rrset.RRset) -> int:
    buffer = io.BytesIO()
    rrset.to_wire(buffer)  # no compression: an upper bound of the compressed size
    return buffer.tell()


# --- the core -------------------------------------------------------------------------------


class MiniDNS:
    """Answers QUERY opcode messages for the live zones of `source` (see the module docstring).

    `cache_records` bounds the LRU of rendered zones by their number of records; `renders` counts
    cache misses (tests use it). Safe to call `handle` from many threads at once.
    """

    def __init__(self, source: ZoneSource | None = None, *, keys: KeySource | None = None,
                 cache_records: int = 500_000, transfers=None):
        self.source = source if source is not None else DatabaseZoneSource()
        # TSIG keys come from the database when zones do; a source given alone means no TSIG.
        self.keys = keys if keys is not None or source is not None else self.source
        self.cache_records = cache_records
        self.renders = 0
        self._cache: collections.OrderedDict[object, RenderedZone] = collections.OrderedDict()
        self._weight = 0
        self._renders_in_flight: dict[object, threading.Lock] = {}
        self._lock = threading.Lock()
        self._allow: dict | None = None
        self._allow_lock = threading.Lock()
        self.transfers = transfers  # a workers.transfers.Recorder: what the secondaries asked for, in Redis

    # -- entry point --
    def handle(self, wire: bytes, peer: tuple[str, int], tcp: bool) -> list[bytes]:
        """The response messages for one query; [] means send nothing. Never raises."""
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
        except Exception:  # noqa: BLE001 - one bad zone or a DB hiccup must not kill the server
            log.exception("MiniDNS: could not answer %s from %s", query.question, peer)
            try:
                return [_error(query, dns.rcode.SERVFAIL)]
            except Exception:  # noqa: BLE001 - even the error answer failed: the bare header will do
                return _header_only(wire, dns.rcode.SERVFAIL)

    def _respond(self, query, peer, tcp) -> list[bytes]:
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
        if rdtype in XFR_TYPES and not self._may_transfer(peer[0], self.source.pool_of(found[1])):
            log.info("MiniDNS: refused %s of %s to %s: not a server of its pool", dns.rdatatype.to_text(rdtype),
                     qname, peer[0])
            return [_error(query, dns.rcode.REFUSED)]
        if rdtype in XFR_TYPES and not self._signed_as_required(query, found[1]):
            log.info("MiniDNS: refused %s of %s to %s: not signed with a key of its pool",
                     dns.rdatatype.to_text(rdtype), qname, peer[0])
            return [_error(query, dns.rcode.REFUSED)]
        if rdtype in XFR_TYPES and self.transfers is not None:
            return self._noted_transfer(query, found, peer, tcp)
        if rdtype == dns.rdatatype.SOA and qname == found[0] and self.transfers is not None and self.allowed(peer[0]):
            self.transfers.soa(found[1], peer[0], found[2])  # a secondary checking the serial (after a NOTIFY)
        zone = self.rendered(found[1], found[2])
        if rdtype in XFR_TYPES:
            return self._transfer(query, found[1], zone, tcp)
        response = dns.message.make_response(query)
        zone.answer(qname, rdtype, response)
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
            transfer.messages = self._transfer(query, found[1], self.rendered(found[1], found[2]), tcp)
        except Exception as exc:
            transfer.finished(0, 0, f"could not answer: {type(exc).__name__}")
            raise
        return transfer

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
    def _transfer(self, query, zone_id, zone: RenderedZone, tcp: bool) -> list[bytes]:
        """RFC 1995. IXFR from a client at our serial (or newer): just our SOA. From an older serial the
        journal knows: the condensed difference, over TCP, or over UDP if it fits in one message (else
        just our SOA: the client retries over TCP). Otherwise AXFR-style (over UDP, just our SOA)."""
        if query.question[0].rdtype == dns.rdatatype.IXFR:
            client = next((rrset[0].serial for rrset in query.authority
                           if rrset.rdtype == dns.rdatatype.SOA and len(rrset)), None)
            if client is not None and not is_newer(zone.serial, client):
                return [self._soa_only(query, zone, tcp)]
            difference = self._difference(zone_id, client, zone) if client is not None else None
            if difference is not None and tcp:
                return self._stream(query, difference)
            if difference is not None:
                fits = self._one_message(query, difference)
                if fits is not None:
                    return [fits]
            if not tcp:
                return [self._soa_only(query, zone, tcp)]
        return self._stream(query, zone.xfr_pieces)

    def _soa_only(self, query, zone: RenderedZone, tcp: bool) -> bytes:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer.append(zone.soa)
        return _fit(response, query, tcp)

    def _difference(self, zone_id, client: int, zone: RenderedZone) -> list[tuple[dns.rrset.RRset, int]] | None:
        """The IXFR's pieces from the client's serial to the zone's: our SOA, the client's SOA, what went,
        our SOA, what came, our SOA. None when the journal does not know the way, or when its
        difference holds more records than the zone (then AXFR-style is the smaller answer)."""
        found = self.source.ixfr(zone_id, client, zone.serial)
        if found is None:
            return None
        removed, added = (_rrsets(zone.origin, rows) for rows in found)
        if added[0] != zone.soa or sum(len(r) for r in removed + added) > zone.size:
            return None
        return _pieces([zone.soa, *removed, *added, zone.soa])

    def _one_message(self, query, pieces) -> bytes | None:
        """All pieces in one UDP answer, if it fits in what the client takes; else None."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer.extend(rrset for rrset, _ in pieces)
        try:
            return response.to_wire(max_size=_udp_size(query))
        except dns.exception.TooBig:
            return None

    def _stream(self, query, pieces) -> list[bytes]:
        """A transfer's pieces packed greedily into messages of at most 64 KiB."""
        def new_message():
            message = dns.message.make_response(query)
            message.flags |= dns.flags.AA
            return message

        room = MAX_MESSAGE - len(new_message().to_wire()) - 468  # header, question, OPT, any padding
        messages, current, used = [], new_message(), 0
        for rrset, size in pieces:
            if current.answer and used + size > room:
                messages.append(current)
                current, used = new_message(), 0
            current.answer.append(rrset)
            used += size
        messages.append(current)
        if not query.had_tsig:
            return [message.to_wire(max_size=MAX_MESSAGE) for message in messages]
        wires, context = [], None  # RFC 8945 5.3.1: each message's MAC chains to the one before
        for message in messages:
            wires.append(message.to_wire(max_size=MAX_MESSAGE, multi=True, tsig_ctx=context))
            context = message.tsig_ctx
        return wires

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
        hosts = self.source.xfr_hosts()
        if not isinstance(hosts, dict):
            hosts = {None: hosts}
        self._allow = {pool: [network for host in sorted(set(h)) for network in _networks(host)]
                       for pool, h in hosts.items()}

    def _may_transfer(self, address: str, pool=_ANY_POOL) -> bool:
        """allowed(), re-reading the pools first when it says no: a server just added to a pool transfers
        at once. Refusals while another read runs are not re-read (strangers cost one read at a time)."""
        if self.allowed(address, pool):
            return True
        if not self._allow_lock.acquire(blocking=False):
            return False
        try:
            self._read_allow_list()
        finally:
            self._allow_lock.release()
        return self.allowed(address, pool)

    # -- the cache --
    def rendered(self, zone_id, serial: int) -> RenderedZone:
        """The zone rendered at `serial` (or newer): from the LRU, else rendered once, even when
        several secondaries ask for the new serial at the same moment."""
        with self._lock:
            zone = self._cached(zone_id, serial)
            if zone is not None:
                return zone
            flight = self._renders_in_flight.setdefault(zone_id, threading.Lock())
        with flight:
            try:
                with self._lock:
                    zone = self._cached(zone_id, serial)
                    if zone is not None:
                        return zone
                started = time.perf_counter()
                found = self.source.records(zone_id)
                if found is None:
                    raise LookupError(f"zone {zone_id} has no records")
                zone = RenderedZone.build(*found)
                metrics.MINIDNS_RENDER_SECONDS.observe(time.perf_counter() - started)
                with self._lock:
                    self.renders += 1
                    self._store(zone_id, zone)
            finally:
                with self._lock:
                    self._renders_in_flight.pop(zone_id, None)
        return zone

    def _cached(self, zone_id, serial):
        zone = self._cache.get(zone_id)
        if zone is None or is_newer(serial, zone.serial):
            return None
        self._cache.move_to_end(zone_id)
        return zone

    def _store(self, zone_id, zone: RenderedZone):
        old = self._cache.pop(zone_id, None)
        if old is not None:
            self._weight -= old.size
            if is_newer(old.serial, zone.serial):  # a slower render of an older snapshot lost the race
                zone = old
        self._cache[zone_id] = zone
        self._weight += zone.size
        while self._weight > self.cache_records and len(self._cache) > 1:
            _, evicted = self._cache.popitem(last=False)
            self._weight -= evicted.size


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
    """Runs in a pool thread: drop broken or expired DB connections around the call, as Django
    does around a request (with CONN_MAX_AGE=0 this closes the connection after each call)."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


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

    def __init__(self, sock: socket.socket, submit, max_pending: int = 4096, batch: int = 256):
        self.sock, self.submit, self.max_pending, self.batch = sock, submit, max_pending, batch
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
                wire = await loop.run_in_executor(pool, next, it, None) if lazy else next(it, None)
                if wire is None:
                    break
                writer.write(struct.pack("!H", len(wire)) + wire)
                await asyncio.wait_for(writer.drain(), write_timeout)
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
                (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), idle_timeout))
                answers = await submit(await asyncio.wait_for(reader.readexactly(length), idle_timeout), peer, True)
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
        udp = _UDP(udp_sock, submit_udp)
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
