"""What validation allows, real BIND9, Knot, PowerDNS and NSD load and serve; what it refuses, one of
them cannot load or serves wrongly.

The first test goes through the API and the whole pipeline: the largest recordsets the API accepts
reach all four secondaries and are answered whole over TCP, and one step over is a 400. The second
writes zones straight into the database, as dnsctl accepted them before these rules (and as it
still refuses them, checked here too), and has every server transfer them from MiniDNS.
"""
import os
import uuid

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.test import APIClient

from tests.conftest import needs_named, wait_until
from tests.conftest_servers import four_servers, mixed_pool, wait_for_serial  # noqa: F401 - fixtures
from tests.servers.bind9 import Bind9Server
from tests.servers.knot import needs_knot
from tests.servers.nsd import needs_nsd
from tests.servers.pdns import needs_pdns
from tests.test_validation import MAX, NAPTR_REGEXPS, naptr, txt_records
from workers.backends import get_backend
from workers.dnsclient import query_soa_serial
from zones import accounts, validation
from zones.models import RecordSet, Zone
from zones.services import pools, writes

pytestmark = [needs_named, needs_knot, needs_pdns, needs_nsd, pytest.mark.integration,
              pytest.mark.django_db(transaction=True)]




def answer(server, name, rtype, flags=dns.flags.RD) -> dns.message.Message:
    query = dns.message.make_query(name, rtype, flags=flags)
    return dns.query.tcp(query, server.host, port=server.port, timeout=10)


def served(response, rtype) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.from_text(rtype)
                  for r in rrset)


def active(zone_id):
    """Wait until the zone's last change is on every server. One change at a time: in a burst, a change
    waits for recovery when claim_changes' FOR UPDATE SKIP LOCKED skips the zone's row because a task
    is inserting a status row that references it (a key-share lock); this test is about the records."""
    zone = wait_until(lambda: (z := Zone.objects.get(id=zone_id)).status in ("ACTIVE", "ERROR") and z,
                      timeout=60, message="the zone to be ACTIVE")
    assert zone.status == "ACTIVE", zone.reason


def test_the_largest_recordsets_the_api_accepts_are_served_over_tcp_by_all_four(four_servers, mixed_pool):
    api = APIClient(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user("tenant", "p1")))
    name = f"big-{uuid.uuid4().hex[:8]}.example.com."
    email = "o'brien+dns.ops@example.com"  # a dot and quote in the mailbox: escaped in the SOA RNAME
    response = api.post("/v2/zones", {"name": name, "email": email}, format="json")
    assert response.status_code == 202, response.json()
    zone_id = response.json()["id"]
    url = f"/v2/zones/{zone_id}/recordsets"
    active(zone_id)
    largest = [
        {"name": "big", "type": "TXT", "records": txt_records(f"big.{name}", 1, MAX)},  # one 64 KB record
        {"name": "many", "type": "TXT", "records": txt_records(f"many.{name}", 100, MAX)},  # 100 records, 64 KB
        {"name": "hundred", "type": "A", "records": [f"10.0.0.{i}" for i in range(100)]},
    ]
    for body in largest:
        response = api.post(url, body, format="json")
        assert response.status_code == 202, response.json()
        active(zone_id)

    before = (Zone.objects.get(id=zone_id).serial, RecordSet.objects.filter(zone_id=zone_id).count())
    one_step_over = [
        ({"name": "big2", "type": "TXT", "records": txt_records(f"big2.{name}", 1, MAX + 1)}, "64,512 octets"),
        ({"name": "many2", "type": "TXT", "records": txt_records(f"many2.{name}", 100, MAX + 1)}, "64,512 octets"),
        ({"name": "more", "type": "A", "records": [f"10.0.0.{i}" for i in range(101)]}, "at most 100 records"),
    ]
    for body, says in one_step_over:
        response = api.post(url, body, format="json")
        assert response.status_code == 400 and says in " ".join(response.json()["errors"]["records"]), response.json()
    assert (Zone.objects.get(id=zone_id).serial, RecordSet.objects.filter(zone_id=zone_id).count()) == before

    for kind, server in four_servers.items():
        for body in largest:
            owner = f"{body['name']}.{name}"
            stored = sorted(RecordSet.objects.get(zone_id=zone_id, name=owner).records)
            for flags in (dns.flags.RD, 0):  # without RD a server may add NS and glue: the answer still fits
                response = answer(server, owner, body["type"], flags)
                assert not response.flags & dns.flags.TC, (kind, owner)
                assert served(response, body["type"]) == stored, (kind, owner)
        [soa] = answer(server, name, "SOA").answer[0]
        assert soa.rname.labels[0] == b"o'brien+dns.ops", kind


# --- what validation refuses, against the real servers ----------------------------------------------

SERVES, NOT_LOADED, NOT_SERVED, SERVED_WRONGLY = "serves", "not loaded", "does not serve it", "serves it wrongly"
DS = "12345 13 2 " + "ab" * 32

# (what, accepted by validation, [(type, owner under the zone, records)], {server: outcome}, BIND's reason);
# servers not named serve the zone's records as MiniDNS does. "@" is the apex; "-NS" drops the apex NS.
CASES = [
    ("a wildcard NS", False, [("NS", "*", ["ns.example.net."])], {"bind9": NOT_LOADED},
     "invalid NS owner name (wildcard)"),
    ("101 records", False, [("A", "a", [f"10.0.{i // 256}.{i % 256}" for i in range(101)])], {"bind9": NOT_LOADED},
     "too many records"),
    ("100 records", True, [("A", "a", [f"10.0.{i // 256}.{i % 256}" for i in range(100)])], {}, None),
    ("no NS at the apex", False, [("-NS", "@", [])], {"bind9": NOT_LOADED}, "bad zone"),
    ("a DS at the apex", False, [("DS", "@", [DS])], {"nsd": NOT_SERVED}, None),  # the parent's data: servers disagree
    ("an empty CAA value", False, [("CAA", "@", ['0 issue ""'])], {"pdns": SERVED_WRONGLY}, None),
    ("NAPTR regexps validation accepts", True,
     [("NAPTR", "n", [naptr(r) for r, ok, _ in NAPTR_REGEXPS if ok])], {}, None),
    ("NAPTR regexps refused here, loaded by BIND", False,
     [("NAPTR", "n", [naptr(r) for r, ok, loads in NAPTR_REGEXPS if loads and not ok])], {}, None),
] + [(f"the NAPTR regexp {r!r}", False, [("NAPTR", "n", [naptr(r)])], {"bind9": NOT_LOADED}, "syntax error")
     for r, ok, loads in NAPTR_REGEXPS if not loads]


@transaction.atomic  # as every write commits a zone with its records: MiniDNS never sees it without them
def write_zone(pool, name: str, rows) -> Zone:
    """A zone straight into the database, past validation: SOA, apex NS (unless "-NS"), then rows."""
    zone = Zone.objects.create(project_id="p1", pool=pool, name=name, email="hostmaster@example.com", serial=7)
    apex = [("SOA", "@", ["ns1.example.net. hostmaster.example.com. 7 3600 600 86400 300"])]
    if ("-NS", "@", []) not in rows:
        apex.append(("NS", "@", ["ns1.example.net."]))
    for rtype, owner, records in apex + [row for row in rows if row[0] != "-NS"]:
        RecordSet.objects.create(zone=zone, name=absolute(owner, name), type=rtype, records=records,
                                 managed=rtype in ("SOA", "NS") and owner == "@")
    return zone


def absolute(owner: str, zone: str) -> str:
    return zone if owner == "@" else f"{owner}.{zone}"


def transfer_status(server: Bind9Server, zone: str) -> str | None:
    """BIND's "Transfer status: ..." for the zone's first transfer, from its log (None: not yet)."""
    with open(os.path.join(server.dir, server.log_name), errors="replace") as log:
        for line in log:
            if f"transfer of '{zone.rstrip('.')}/IN'" in line and "Transfer status: " in line:
                return line.split("Transfer status: ", 1)[1].strip()
    return None


def outcome(kind: str, server, zone: str, rows) -> str:
    if kind == "bind9":  # BIND logs each transfer's outcome: no need to wait out a timeout
        status = wait_until(lambda: transfer_status(server, zone), timeout=20, message=f"BIND's transfer of {zone}")
        if status != "success":
            return NOT_LOADED if query_soa_serial(zone, server.host, server.port) is None else status
    if wait_for_serial(server, zone, 7, timeout=20) != 7:
        return NOT_LOADED
    for rtype, owner, records in rows:
        if rtype in ("NS", "-NS"):
            continue  # a delegation is answered with a referral, not with the records
        want = sorted(r.to_text() for r in dns.rrset.from_text_list(absolute(owner, zone), 300, "IN", rtype, records))
        got = served(answer(server, absolute(owner, zone), rtype), rtype)
        if got != want:
            return NOT_SERVED if not got else SERVED_WRONGLY
    return SERVES


def test_what_validation_refuses_a_real_server_cannot_load_or_serve(four_servers, mixed_pool, minidns_address):
    bare = pools.save_pool(None, name="bare")  # no NS records
    zones = {}
    for what, accepted, rows, _, _ in CASES:
        name = f"v{len(zones)}-{uuid.uuid4().hex[:6]}.example.com."
        for rtype, owner, records in rows:
            if rtype == "-NS":
                with pytest.raises(ValidationError):
                    writes.create_zone(project_id="p1", name=name, email="a@example.com", pool_id=bare.id,
                                         admin=True)
            elif accepted:
                validation.records(records, rtype, name, absolute(owner, name))
            else:
                with pytest.raises(ValidationError):
                    validation.records(records, rtype, name, absolute(owner, name))
        zones[what] = write_zone(mixed_pool, name, rows).name
    for kind, server in four_servers.items():
        backend = get_backend(kind, kind, server.backend_options, [minidns_address])
        for name in zones.values():
            backend.create_zone(name)

    for what, _, rows, outcomes, reason in CASES:
        for kind, server in four_servers.items():
            assert outcome(kind, server, zones[what], rows) == outcomes.get(kind, SERVES), (what, kind)
        if reason:
            assert transfer_status(four_servers["bind9"], zones[what]) == reason, what
