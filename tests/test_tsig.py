"""TSIG on zone transfers: MiniDNS refuses unsigned or wrongly signed transfers of a zone whose pool or
target has a key, signs its answers, and BIND9, Knot and PowerDNS transfer with the key the backends
configure. Secrets never show in the API or the admin."""
import base64
import contextlib
import logging
import os
import time

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import pytest

from tests.conftest import needs_named
from tests.conftest_servers import DictZones, MiniDNSThread, tsig_key, wait_for_serial
from tests.servers.bind9 import Bind9Server
from tests.servers.knot import KnotServer, needs_knot
from tests.servers.nsd import NsdServer, needs_nsd
from tests.servers.pdns import PdnsServer, needs_pdns
from workers.backends.bind9 import Bind9Backend
from workers.backends.knot import KnotBackend
from workers.backends.nsd import NsdBackend
from workers.backends.pdns import PowerDNSBackend
from workers.minidns import DatabaseZoneSource, MiniDNS

ZONE = "signed.example.test."
PEER = ("127.0.0.1", 53000)


@pytest.fixture
def key():
    return tsig_key()


@pytest.fixture
def zones(key):
    source = DictZones()
    source.keys[key["name"]] = key
    source.add(ZONE, serial=5, txt=600, keys={key["name"]})  # ~140 KiB: an AXFR of several messages
    source.add("open.example.test.", serial=1)
    return source


def keyring(key, secret=None):
    return {dns.name.from_text(key["name"]): dns.tsig.Key(key["name"], secret or key["secret"], key["algorithm"])}


def xfr(minidns, name, ring=None):
    query = dns.message.make_query(name, "AXFR")
    if ring:
        query.use_tsig(ring)
    return query, list(minidns.handle(query.to_wire(), PEER, True))


def rcode_of(wires):
    (wire,) = wires
    return dns.message.from_wire(wire, ignore_trailing=True, keyring=False).rcode()


# -- MiniDNS, no sockets --------------------------------------------------------------------------

def test_unsigned_transfer_of_a_keyed_zone_is_refused(zones):
    minidns = MiniDNS(source=zones, keys=zones)
    assert rcode_of(xfr(minidns, ZONE)[1]) == dns.rcode.REFUSED
    assert len(xfr(minidns, "open.example.test.")[1]) == 1  # a zone without keys still transfers unsigned


def test_wrong_secret_or_unknown_key_is_notauth(zones, key):
    minidns = MiniDNS(source=zones, keys=zones)
    wrong = base64.b64encode(os.urandom(32)).decode()
    assert rcode_of(xfr(minidns, ZONE, keyring(key, wrong))[1]) == dns.rcode.NOTAUTH
    stranger = tsig_key("stranger")
    assert rcode_of(xfr(minidns, ZONE, keyring(stranger))[1]) == dns.rcode.NOTAUTH


def test_a_known_key_of_another_pool_is_refused(zones):
    other = tsig_key("other-pool")
    zones.keys[other["name"]] = other
    minidns = MiniDNS(source=zones, keys=zones)
    assert rcode_of(xfr(minidns, ZONE, keyring(other))[1]) == dns.rcode.REFUSED


def test_the_right_key_gets_every_message_signed_and_chained(zones, key):
    minidns = MiniDNS(source=zones, keys=zones)
    query, wires = xfr(minidns, ZONE, keyring(key))
    assert len(wires) > 1
    ring, request_mac, context, records = keyring(key), query.mac, None, 0
    for wire in wires:  # raises if any MAC is missing or does not chain to the one before
        message = dns.message.from_wire(wire, keyring=ring, request_mac=request_mac, xfr=True, origin=None,
                                        tsig_ctx=context, multi=True)
        context = message.tsig_ctx
        assert message.had_tsig and message.rcode() == dns.rcode.NOERROR
        records += sum(len(rrset) for rrset in message.answer)
    assert records == 603 + 1  # every record, and the SOA again at the end


def test_signed_soa_queries_get_signed_answers(zones, key):
    minidns = MiniDNS(source=zones, keys=zones)
    query = dns.message.make_query(ZONE, "SOA")
    query.use_tsig(keyring(key))
    (wire,) = minidns.handle(query.to_wire(), PEER, False)
    answer = dns.message.from_wire(wire, keyring=keyring(key), request_mac=query.mac)
    assert answer.had_tsig and answer.answer[0][0].serial == 5


# -- real secondaries --------------------------------------------------------------------------------

@pytest.fixture
def minidns(zones, caplog):
    caplog.set_level(logging.INFO, logger="workers.minidns")
    with MiniDNSThread(MiniDNS(source=zones, keys=zones)) as server:
        yield server


def wait_for_log(caplog, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while text not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    return text in caplog.text


@contextlib.contextmanager
def asking_for_zone(minidns, server, backend_class, **options):
    """Start server and have a backend_class target of it (with these extra options) add ZONE from MiniDNS."""
    with server:
        backend_class("tsig-test", {**server.backend_options, **options}, [minidns.address]).create_zone(ZONE)
        yield server


def refuses_a_wrong_or_no_key(caplog, key, secondary, no_key=True):
    """secondary(tsig) starts a server keyed with tsig (None: no key) that asks for ZONE. With a wrong
    secret (and, when no_key, with no key at all) MiniDNS says why it refuses and nothing transfers."""
    cases = [({**key, "secret": base64.b64encode(os.urandom(32)).decode()}, "TSIG check failed")]
    if no_key:
        cases.append((None, "not signed with a key of its pool"))
    for tsig, complaint in cases:
        caplog.clear()
        with secondary(tsig) as server:
            assert wait_for_log(caplog, complaint)
            assert wait_for_serial(server, ZONE, 5, timeout=1) is None


@needs_named
def test_bind9_transfers_with_the_key_only(minidns, key, caplog):
    def secondary(tsig):  # named.conf defines the key; the backend names it in each zone's primaries
        return asking_for_zone(minidns, Bind9Server(tsig=tsig), Bind9Backend, **({"tsig_key": tsig} if tsig else {}))

    with secondary(key) as bind:
        assert wait_for_serial(bind, ZONE, 5, timeout=15) == 5
        assert "TSIG dnsctl-xfr" in bind.log_tail(200)  # named's own "Transfer completed: ... TSIG <key>"
    refuses_a_wrong_or_no_key(caplog, key, secondary)


@needs_knot
def test_knot_transfers_with_the_key_only(minidns, key, caplog):
    def secondary(tsig):
        return asking_for_zone(minidns, KnotServer(masters=[minidns.address], tsig=tsig), KnotBackend)

    with secondary(key) as knot:
        assert wait_for_serial(knot, ZONE, 5, timeout=15) == 5
    refuses_a_wrong_or_no_key(caplog, key, secondary)


@needs_nsd
def test_nsd_transfers_with_the_key_only(minidns, key, caplog):
    def secondary(tsig):
        return asking_for_zone(minidns, NsdServer(masters=[minidns.address], tsig=tsig), NsdBackend)

    with secondary(key) as nsd:
        assert wait_for_serial(nsd, ZONE, 5, timeout=15) == 5
    refuses_a_wrong_or_no_key(caplog, key, secondary, no_key=False)


@needs_pdns
def test_pdns_backend_installs_the_key_and_transfers(minidns, key, caplog):
    with PdnsServer() as pdns:
        options = {**pdns.backend_options, "tsig_key": key}
        PowerDNSBackend("pdns-tsig", options, [minidns.address]).create_zone(ZONE)
        assert wait_for_serial(pdns, ZONE, 5, timeout=15) == 5
        assert pdns.api("tsigkeys/dnsctl-xfr.") == 200
        PowerDNSBackend("pdns-tsig", options, [minidns.address]).create_zone(ZONE)  # the key exists: still fine
        caplog.clear()
        unsigned = "open.example.test."
        PowerDNSBackend("pdns-plain", pdns.backend_options, [minidns.address]).create_zone(unsigned)
        assert wait_for_serial(pdns, unsigned, 1, timeout=15) == 1
        assert key["secret"] not in caplog.text


# -- the database: keys on pools and targets, never shown ------------------------------------------------

@pytest.fixture
def stored_keys(db):
    from zones.models import TsigKey

    return (TsigKey.objects.create(**tsig_key("pool-key")), TsigKey.objects.create(**tsig_key("target-key")))


def keyed_pool(stored_keys, **extra):
    from zones.services import pipeline, pools, writes

    pool_key, target_key = stored_keys
    return pools.save_pool(
        None, name="keyed", tsig_key="pool-key", notify_source="127.0.0.2",
        ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        targets=[{"name": "k1", "type": "knot", "options": {"socket": "/run/knot/knot.sock"},
                  "masters": ["127.0.0.1:5354"], "tsig_key": "target-key"},
                 {"name": "k2", "type": "knot", "options": {"socket": "/run/knot2/knot.sock"},
                  "masters": ["127.0.0.1:5354"]}], **extra)


def test_workers_get_the_key_of_the_target_else_the_pool(stored_keys):
    from zones.services import pipeline, pools, writes

    pool = keyed_pool(stored_keys)
    work = pipeline.pool_work(pool.id)
    assert work["notify_source"] == "127.0.0.2"
    keys = {t["name"]: t["options"]["tsig_key"]["name"] for t in work["targets"]}
    assert keys == {"k1": "target-key", "k2": "pool-key"}
    assert work["targets"][0]["options"]["tsig_key"]["secret"] == stored_keys[1].secret


def test_minidns_accepts_the_pool_and_target_keys_of_the_zone(stored_keys):
    from zones.services import pipeline, pools, writes

    pool = keyed_pool(stored_keys, nameservers=[{"host": "127.0.0.1", "port": 53}])  # the pool's: may transfer
    zone = writes.create_zone(project_id="p1", name="keyed.example.com.", email="a@example.com",
                                pool_id=pool.id, admin=True)
    source = DatabaseZoneSource()
    assert source.transfer_keys(zone.id) == {"pool-key", "target-key"}
    assert source.tsig_key("POOL-KEY")["secret"] == stored_keys[0].secret
    minidns = MiniDNS()
    assert rcode_of(xfr(minidns, zone.name)[1]) == dns.rcode.REFUSED
    ring = keyring({"name": "target-key", "algorithm": "hmac-sha256", "secret": stored_keys[1].secret})
    query, (first, *_) = xfr(minidns, zone.name, ring)
    answer = dns.message.from_wire(first, keyring=ring, request_mac=query.mac, xfr=True, multi=True, origin=None)
    assert answer.rcode() == dns.rcode.NOERROR and answer.answer[0].rdtype == dns.rdatatype.SOA


def test_bad_pool_input_is_a_400_and_changes_nothing(stored_keys):
    from django.core.exceptions import ValidationError

    from zones.models import Pool

    from zones.services import pipeline, pools, writes

    for extra, field in (({"tsig_key": "nope"}, "tsig_key"), ({"notify_source": "not-an-ip"}, "notify_source"),
                         ({"targets": [{"name": "t", "type": "knot", "options": {}}]}, "targets[0].options")):
        with pytest.raises(ValidationError) as excinfo:
            pools.save_pool(None, name="bad", **extra)
        assert field in excinfo.value.message_dict
    assert not Pool.objects.filter(name="bad").exists()


def test_api_and_admin_never_show_secrets(stored_keys, admin_client, admin_user):
    from rest_framework.test import APIClient

    from zones.models import TsigKey

    pool = keyed_pool(stored_keys)
    pool_key, target_key = stored_keys
    api = APIClient()
    api.force_authenticate(admin_user)
    body = api.get(f"/v2/pools/{pool.id}")
    assert body.status_code == 200, body.content
    data = body.json()
    assert (data["tsig_key"], data["notify_source"]) == ("pool-key", "127.0.0.2")
    assert [t["tsig_key"] for t in data["targets"]] == ["target-key", None]
    page = admin_client.get(f"/admin/zones/tsigkey/{pool_key.id}/change/").content.decode()
    assert "*****" in page
    pool_page = admin_client.get(f"/admin/zones/pool/{pool.id}/change/").content.decode()
    for text in (body.content.decode(), page, pool_page):
        assert pool_key.secret not in text and target_key.secret not in text

    # sent back as *****, the stored secret stays; a new one replaces it
    form = {"name": "pool-key", "algorithm": "hmac-sha256", "secret": "*****"}
    assert admin_client.post(f"/admin/zones/tsigkey/{pool_key.id}/change/", form).status_code == 302
    assert TsigKey.objects.get(id=pool_key.id).secret == pool_key.secret
    new = base64.b64encode(os.urandom(32)).decode()
    admin_client.post(f"/admin/zones/tsigkey/{pool_key.id}/change/", {**form, "secret": new})
    assert TsigKey.objects.get(id=pool_key.id).secret == new
    response = admin_client.post(f"/admin/zones/tsigkey/{pool_key.id}/change/", {**form, "secret": "no base64!"})
    assert response.status_code == 200 and "Not valid base64" in response.content.decode()
