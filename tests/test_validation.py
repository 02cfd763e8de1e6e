"""What the API accepts: each rule of zones.validation and of the input serializers, with accepted and
refused examples; then through the API (400 naming the field, nothing changed).

tests/test_validation_servers.py shows the same rules against real BIND9, Knot, PowerDNS and NSD.
"""
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.NAPTR
import dns.rrset
import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from zones import accounts, validation
from zones.models import Pool, RecordSet, Zone
from zones.services import pools

ZONE = "example.com."
MAX = validation.MAX_RRSET_WIRE


def refused(function, *args, field, says):
    """Call a validation function that must refuse, and check the field and the message."""
    with pytest.raises(ValidationError) as excinfo:
        function(*args)
    errors = excinfo.value.message_dict
    assert field in errors, errors
    assert says in " ".join(errors[field]), errors
    return errors[field]


# --- exact sizes, for these tests and the real servers' ------------------------------------------


def txt(rdlen: int, prefix: str = "") -> str:
    """TXT rdata text whose wire form is exactly rdlen octets: the prefix as a first string, then
    255-character strings (256 octets each), then what is left."""
    strings = [prefix] if prefix else []
    rest = rdlen - (len(prefix) + 1 if prefix else 0)
    full, left = divmod(rest, 256)
    strings += ["y" * 255] * full + (["y" * (left - 1)] if left else [])
    return " ".join(f'"{s}"' for s in strings)


def txt_records(owner: str, count: int, total: int) -> list[str]:
    """count distinct TXT records at owner whose RRset is exactly total octets on the wire (each
    record: the owner name, 10 octets of type, class, TTL and length, then its rdata)."""
    overhead = len(dns.name.from_text(owner).to_wire()) + 10
    base, extra = divmod(total - count * overhead, count)
    return [txt(base + (i < extra), prefix=f"{i:03d}") for i in range(count)]


def wire_size(owner: str, rtype: str, records: list[str]) -> int:
    rrset = dns.rrset.from_text_list(owner, 300, "IN", rtype, records)
    return sum(len(rrset.name.to_wire()) + 10 + len(r.to_wire()) for r in rrset)


def test_the_size_helpers_are_exact():
    for count, total in ((1, MAX), (100, MAX), (3, 1000), (1, 300)):
        records = txt_records("t.example.com.", count, total)
        assert len(set(records)) == count and wire_size("t.example.com.", "TXT", records) == total


# --- names ---------------------------------------------------------------------------------------

LONGEST = ".".join(["a" * 63] * 3 + ["b" * 61]) + "."  # 255 octets on the wire


@pytest.mark.parametrize("value, stored", [
    ("example.com.", "example.com."),
    ("Example.COM.", "example.com."),
    ("xn--bcher-kva.example.", "xn--bcher-kva.example."),
    ("_sub.example.com.", "_sub.example.com."),
    ("a-b.123.example.", "a-b.123.example."),
    ("2.0.192.in-addr.arpa.", "2.0.192.in-addr.arpa."),
    (LONGEST, LONGEST),
    ("a" * 63 + ".com.", "a" * 63 + ".com."),
])
def test_zone_names_accepted(value, stored):
    assert validation.zone_name(value) == stored


@pytest.mark.parametrize("value, says", [
    ("bücher.example.", "use the A-label form xn--bcher-kva.example."),
    ("BÜCHER.Example.", "use the A-label form xn--bcher-kva.example."),
    ("bücher。example.", "use the A-label form xn--bcher-kva.example."),
    ("bücher.example", "use the A-label form xn--bcher-kva.example"),
    ("a\u200db.example.", "not a valid internationalised domain name"),
    ("☃.example.", "not a valid internationalised domain name"),
    ("example.123.", "all-numeric top-level domain '123'"),
    ("192.0.2.1.", "all-numeric top-level domain '1'"),
    ("example.com", "must end with a dot"),
    ("com.", "top-level domain"),
    ("a" * 64 + ".com.", "longer than 63 octets"),
    ("c." + LONGEST, "longer than 255 octets"),
    ("exa mple.com.", "invalid label"),
    ("ex!ample.com.", "invalid label"),
    ("*.example.com.", "invalid label '*'"),
    ("-a.example.com.", "invalid label '-a'"),
    ("a-.example.com.", "invalid label 'a-'"),
    ("a\\.b.example.com.", "invalid label"),
    ("a..example.com.", "not a valid domain name"),
    ("", "required"),
    (5, "Must be a string"),
])
def test_zone_names_refused(value, says):
    refused(validation.zone_name, value, field="name", says=says)


@pytest.mark.parametrize("value, stored", [
    ("www", "www.example.com."),
    ("WWW.example.com.", "www.example.com."),
    ("@", "example.com."),
    ("*", "*.example.com."),
    ("*.www", "*.www.example.com."),
    ("_sip._tcp", "_sip._tcp.example.com."),
])
def test_record_names_accepted(value, stored):
    assert validation.record_name(value, ZONE) == stored


@pytest.mark.parametrize("value, says", [
    ("bücher", "use the A-label form xn--bcher-kva"),
    ("www.bücher.example.com.", "use the A-label form www.xn--bcher-kva.example.com."),
    ("www.*", "invalid label '*'"),
    ("www.example.org.", "not inside the zone"),
    ("bad label", "invalid label"),
    ("a" * 64, "longer than 63 octets"),
    (".".join(["a" * 63] * 4), "longer than 255 octets"),
    (["www"], "Must be a string"),
])
def test_record_names_refused(value, says):
    refused(validation.record_name, value, ZONE, field="name", says=says)


# --- emails --------------------------------------------------------------------------------------

EMAILS = [
    "hostmaster@example.com",
    "first.last@example.com",
    "o'brien+dns@mail.example.co.uk",
    "a!#$%&'*+/=?^_`{|}~-z@example.com",
    "dots.in.the.mailbox.name@example.com",
    "x" * 63 + "@example.com",
    "admin@xn--bcher-kva.example",
    "a@1.2.example",
]


@pytest.mark.parametrize("email", EMAILS)
def test_every_accepted_email_round_trips_through_the_soa_rdata(email):
    assert validation.email(email) == email.lower()
    soa = f"ns1.example.net. {validation.email_to_rname(email)} 1 3600 600 86400 300"
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SOA, soa)
    back = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.SOA, rdata.to_wire(), 0, len(rdata.to_wire()))
    assert back.to_text() == soa
    rname = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SOA, back.to_text()).rname
    mailbox, *domain = [label.decode() for label in rname.labels[:-1]]
    assert f"{mailbox}@{'.'.join(domain)}" == email  # the mailbox is one label, its dots included


def test_the_rname_escapes_what_a_zone_file_needs_escaped():
    assert validation.email_to_rname("first.last@example.com") == "first\\.last.example.com."
    assert validation.email_to_rname("a$b@example.com") == "a\\$b.example.com."


def test_email_is_stored_in_lower_case():
    assert validation.email("Admin@Example.COM") == "admin@example.com"


@pytest.mark.parametrize("email, says", [
    ("a b@example.com", "is not an email address"),
    ('"a b"@example.com', "is not an email address"),
    ('"quoted"@example.com', "not a dot-atom"),
    ("a..b@example.com", "is not an email address"),
    (".a@example.com", "is not an email address"),
    ("a.@example.com", "is not an email address"),
    ("a@b", "is not an email address"),
    ("a@localhost", "two or more host-name labels"),
    ("a@[192.0.2.1]", "two or more host-name labels"),
    ("a@example.123", "is not an email address"),
    ("a@example.com.", "is not an email address"),
    ("a@exa_mple.com", "is not an email address"),
    ("a@@example.com", "is not an email address"),
    ("nobody", "is not an email address"),
    ("admin@bücher.example", "use the A-label form admin@xn--bcher-kva.example"),
    ("ädmin@example.com", "the mailbox name must be ASCII"),
    ("x" * 64 + "@example.com", "longer than 63 octets"),
    ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 62, "cannot be written in a SOA record"),
    (5, "is not an email address"),
])
def test_emails_refused(email, says):
    refused(validation.email, email, field="email", says=says)


# --- records -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rtype, name, records, stored", [
    ("TXT", "t", ['"bücher"'], ['"b\\195\\188cher"']),  # TXT is bytes: non-ASCII is fine
    ("MX", "@", ["10 mx1"], ["10 mx1.example.com."]),
    ("MX", "@", ["0 ."], ["0 ."]),  # RFC 7505 null MX
    ("SRV", "_sip._tcp", ["0 0 0 ."], ["0 0 0 ."]),  # RFC 2782: no such service
    ("SRV", "_sip._tcp", ["10 5 5060 sip-1"], ["10 5 5060 sip-1.example.com."]),
    ("NS", "sub", ["ns1.example.net."], ["ns1.example.net."]),
    ("DS", "sub", ["12345 13 2 " + "ab" * 32], ["12345 13 2 " + "ab" * 32]),
    ("CNAME", "c", ["_service.example.net."], ["_service.example.net."]),
    ("PTR", "p", ["host.example.net."], ["host.example.net."]),
    ("CAA", "@", ['0 issue ";"'], ['0 issue ";"']),
    ("NAPTR", "n", ['100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .'],
     ['100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .']),
    ("A", "a", ["192.0.2.1", "192.0.2.1"], ["192.0.2.1"]),  # duplicates fold
])
def test_records_accepted(rtype, name, records, stored):
    assert validation.records(records, rtype, ZONE, validation.record_name(name, ZONE)) == stored


@pytest.mark.parametrize("rtype, name, records, field, says", [
    ("DS", "@", ["12345 13 2 " + "ab" * 32], "type", "cannot be at the zone apex"),
    ("NS", "*", ["ns1.example.net."], "name", "wildcard"),
    ("NS", "*.sub", ["ns1.example.net."], "name", "wildcard"),
    ("NS", "sub", ["_ns.example.net."], "records", "not a host name"),
    ("NS", "sub", ["."], "records", "cannot point to the root"),
    ("MX", "@", ["10 mail_x.example.net."], "records", "not a host name"),
    ("MX", "@", ["10 a\\032b.example.net."], "records", "not a host name"),
    ("MX", "@", ["10 192.0.2.1."], "records", "all-numeric top-level domain '1'"),
    ("MX", "@", ["10 bücher.example."], "records", "use the A-label form 10 xn--bcher-kva.example."),
    ("SRV", "_sip._tcp", ["0 0 5060 -sip.example.net."], "records", "not a host name"),
    ("CNAME", "c", ["*.example.net."], "records", "invalid label '*'"),
    ("CNAME", "c", ["a\\000b.example.net."], "records", "invalid label"),
    ("CNAME", "c", ["bücher"], "records", "use the A-label form xn--bcher-kva.example.com."),
    ("CNAME", "c", ["."], "records", "cannot point to the root"),
    ("CNAME", "c", ["a.example.net.", "b.example.net."], "records", "exactly one record"),
    ("PTR", "p", ["host.example.123."], "records", "all-numeric"),
    ("NAPTR", "n", ['100 10 "u" "E2U+sip" "!^(.*)$!\\\\2!" .'], "records", "refers to a group"),
    ("NAPTR", "n", ['100 10 "u" "E2U+sip" "!^.*$!x!" bücher.example.'], "records", "A-label form"),
    ("CAA", "@", ['0 issue ""'], "records", 'write ";"'),
    ("DS", "sub", ["12345 13 2 " + "ab" * 20], "records", "digest length"),
    ("SSHFP", "h", ["1 1 " + "ab" * 32], "records", "fingerprint length"),
    ("TXT", "t", ['"' + "x" * 256 + '"'], "records", "not valid TXT data"),
    ("A", "a", [5], "records", "is not a record for type A"),
    ("A", "a", [], "records", "At least one record"),
    ("A", "a", "192.0.2.1", "records", "At least one record"),
])
def test_records_refused(rtype, name, records, field, says):
    refused(validation.records, records, rtype, ZONE, validation.record_name(name, ZONE), field=field, says=says)


def test_a_recordset_of_exactly_the_limit_is_accepted_and_one_octet_more_is_refused():
    owner = "big.example.com."
    assert len(validation.records(txt_records(owner, 1, MAX), "TXT", ZONE, owner)) == 1
    assert len(validation.records(txt_records(owner, 100, MAX), "TXT", ZONE, owner)) == 100
    for count in (1, 100):
        [message] = refused(validation.records, txt_records(owner, count, MAX + 1), "TXT", ZONE, owner,
                            field="records", says="64,512 octets on the wire")
        assert "at most 64,511 octets" in message


@pytest.mark.parametrize("size", [76_000, 1_000_000])
def test_a_76_kb_or_1_mb_txt_is_refused_with_its_size_and_the_limit(size):
    owner = "t.example.com."
    records = txt_records(owner, 1, size)
    [message] = refused(validation.records, records, "TXT", ZONE, owner, field="records", says=f"{size:,} octets")
    assert f"at most {MAX:,} octets" in message and len(message) < 200  # the record is not echoed


def test_a_recordset_holds_at_most_100_records():
    addresses = [f"10.0.{i // 256}.{i % 256}" for i in range(101)]
    assert len(validation.records(addresses[:100], "A", ZONE, "a.example.com.")) == 100
    refused(validation.records, addresses, "A", ZONE, "a.example.com.", field="records", says="at most 100 records")


def test_supported_types_only():
    assert validation.recordset_type("aaaa") == "AAAA"
    refused(validation.recordset_type, "SOA", field="type", says="managed by dnsctl")
    refused(validation.recordset_type, "DNAME", field="type", says="not a supported record type")
    refused(validation.recordset_type, 1, field="type", says="not a supported record type")


# --- NAPTR regexps (RFC 3402 4.1), as BIND 9 loads them ----------------------------------------------
# (regexp, accepted here, BIND 9 loads it): tests/test_validation_servers.py checks the last column.
NAPTR_REGEXPS = [
    (b"", True, True),
    (b"!^.*$!sip:info@example.com!", True, True),
    (b"!^\\+?(.*)$!sip:\\1@example.com!", True, True),
    (b"!^.*$!x!i", True, True),
    (b"![[:digit:]]+!x!", True, True),
    (b"![]a]!x!", True, True),
    (b"![^]a-c]!x!", True, True),
    (b"!a\\!b!x!", True, True),
    (b"!a()!x!", True, True),
    (b"/^(a|b){1,3}$/x/", True, True),
    (b"!\\d!x!", True, True),
    (b"!a{2}b{0,}!x!", True, True),
    (b"!^(.*)$!\\2!", False, False),
    (b"!^(.*)$!\\0!", False, False),
    (b"!^.*$!x!x", False, False),
    (b"!^.*?$!x!", False, False),
    (b"!a**!x!", False, False),
    (b"!(|a)!x!", False, False),
    (b"!(a|)!x!", False, False),
    (b"!a|!x!", False, False),
    (b"!a{300}!x!", False, False),
    (b"!a{3,2}!x!", False, False),
    (b"![[:foo:]]!x!", False, False),
    (b"![z-a]!x!", False, False),
    (b"!(a!x!", False, False),
    (b"![a!x!", False, False),
    (b"1a1x1", False, False),
    (b"iaixi", False, False),
    (b"!(?:a)!x!", False, False),
    (b"!^*a!x!", False, False),
    (b"!a!b", False, False),
    (b"!!x!", False, False),
    (b"!a)!x!", False, True),  # stricter than BIND: a lone ")" is a literal in POSIX, an error in most engines
    (b"![[=a=]]!x!", False, True),  # stricter than BIND: equivalence classes are refused
]


def naptr(regexp: bytes) -> str:
    return dns.rdtypes.IN.NAPTR.NAPTR(dns.rdataclass.IN, dns.rdatatype.NAPTR, 100, 10, b"u", b"E2U+sip", regexp,
                                      dns.name.root).to_text()


@pytest.mark.parametrize("regexp, accepted, _", NAPTR_REGEXPS)
def test_naptr_regexps(regexp, accepted, _):
    if accepted:
        assert validation.naptr_regexp_problem(regexp) is None
        assert validation.records([naptr(regexp)], "NAPTR", ZONE, "n.example.com.") == [naptr(regexp)]
    else:
        assert validation.naptr_regexp_problem(regexp)
        refused(validation.records, [naptr(regexp)], "NAPTR", ZONE, "n.example.com.", field="records",
                says="NAPTR regexp that BIND 9 refuses")


# --- through the API -----------------------------------------------------------------------------


@pytest.fixture
def pool(db):
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])


@pytest.fixture
def alice(pool):
    return APIClient(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user("alice", "p1")))


@pytest.fixture
def admin(pool):
    return APIClient(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user("root", "ops", "admin")))


@pytest.fixture
def zone(alice):
    response = alice.post("/v2/zones", {"name": ZONE, "email": "hostmaster@example.com"}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def state():
    """Everything a refused request must leave as it was."""
    return (list(Zone.objects.order_by("id").values_list("id", "name", "email", "serial", "ttl", "description")),
            list(RecordSet.objects.order_by("id").values_list("id", "records", "ttl", "description")),
            list(Pool.objects.order_by("id").values_list("id", "name", "description", "notify_source")))


def assert_400(response, field, says=""):
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["code"], body["type"]) == (400, "invalid_object") and field in body["errors"], body
    assert says in " ".join(body["errors"][field]), body
    assert field in body["message"]


@pytest.mark.parametrize("body, field, says", [
    ({"name": 5}, "name", "Must be a JSON string, not a number."),
    ({"name": 1.5}, "name", "not a number"),
    ({"name": True}, "name", "not a boolean"),
    ({"name": ["example.com."]}, "name", "not an array"),
    ({"name": {"a": 1}}, "name", "not an object"),
    ({"name": None}, "name", "may not be null"),
    ({"email": 5}, "email", "not a number"),
    ({"description": 5}, "description", "not a number"),
    ({"description": "x" * 161}, "description", "160"),
    ({"type": 1}, "type", "not a number"),
    ({"type": "SECONDARY"}, "type", "Only PRIMARY"),
    ({"name": "bücher.example."}, "name", "use the A-label form xn--bcher-kva.example."),
    ({"name": "example.123."}, "name", "all-numeric"),
    ({"email": "a b@example.com"}, "email", "not an email address"),
    ({"email": "admin@bücher.example"}, "email", "use the A-label form admin@xn--bcher-kva.example"),
])
def test_bad_zone_input_is_400_and_writes_nothing(alice, body, field, says):
    before = state()
    assert_400(alice.post("/v2/zones", {"name": ZONE, "email": "a@example.com", **body}, format="json"), field, says)
    assert state() == before


@pytest.mark.parametrize("body, field, says", [
    ({"email": 5}, "email", "not a number"),
    ({"email": "a b@example.com"}, "email", "not an email address"),
    ({"email": "x" * 64 + "@example.com"}, "email", "longer than 63 octets"),
    ({"description": False}, "description", "not a boolean"),
])
def test_bad_zone_patch_is_400_and_changes_nothing(alice, zone, body, field, says):
    before = state()
    assert_400(alice.patch(f"/v2/zones/{zone['id']}", body, format="json"), field, says)
    assert state() == before


def test_a_zone_in_a_pool_without_ns_records_is_refused(alice, pool):
    pools.save_pool(pool, name="default", ns_records=[])
    before = state()
    assert_400(alice.post("/v2/zones", {"name": ZONE, "email": "a@example.com"}, format="json"), "pool_id",
               "no NS records")
    assert state() == before


RECORDSET_BAD = [
    ({"name": 5}, "name", "not a number"),
    ({"type": 1}, "type", "not a number"),
    ({"records": [5]}, "records[0]", "not a number"),
    ({"records": ["192.0.2.1", True]}, "records[1]", "not a boolean"),
    ({"records": [None]}, "records[0]", "may not be null"),
    ({"description": 7}, "description", "not a number"),
    ({"name": "bücher"}, "name", "use the A-label form xn--bcher-kva"),
    ({"type": "DS", "name": "@", "records": ["12345 13 2 " + "ab" * 32]}, "type", "zone apex"),
    ({"type": "NS", "name": "*", "records": ["ns1.example.net."]}, "name", "wildcard"),
    ({"type": "MX", "name": "@", "records": ["10 bücher.example."]}, "records", "A-label form 10 xn--bcher-kva"),
    ({"type": "MX", "name": "@", "records": ["10 192.0.2.1."]}, "records", "all-numeric"),
    ({"type": "NAPTR", "name": "n", "records": ['100 10 "u" "E2U+sip" "!(|a)!x!" .']}, "records", "empty alternative"),
    ({"type": "CAA", "name": "@", "records": ['0 issue ""']}, "records", 'write ";"'),
    ({"type": "A", "records": [f"10.0.0.{i}" for i in range(101)]}, "records", "at most 100 records"),
    ({"type": "TXT", "records": [txt(76_000)]}, "records", "at most 64,511 octets"),
    ({"type": "TXT", "records": txt_records("www.example.com.", 1, MAX + 1)}, "records", "64,512 octets"),
]


@pytest.mark.parametrize("body, field, says", RECORDSET_BAD)
def test_bad_recordsets_are_400_and_write_nothing(alice, zone, body, field, says):
    before = state()
    data = {"name": "www", "type": "A", "records": ["192.0.2.1"], **body}
    assert_400(alice.post(f"/v2/zones/{zone['id']}/recordsets", data, format="json"), field, says)
    assert state() == before


@pytest.mark.parametrize("body, field, says", [
    ({"records": [1]}, "records[0]", "not a number"),
    ({"records": [txt(65_000)]}, "records", "65,027 octets"),
    ({"records": txt_records("big.example.com.", 1, MAX + 1)}, "records", "at most 64,511 octets"),
    ({"description": 1}, "description", "not a number"),
])
def test_bad_recordset_updates_are_400_and_change_nothing(alice, zone, body, field, says):
    url = f"/v2/zones/{zone['id']}/recordsets"
    response = alice.post(url, {"name": "big", "type": "TXT", "records": txt_records("big.example.com.", 1, MAX)},
                          format="json")
    assert response.status_code == 202, response.json()
    before = state()
    assert_400(alice.put(f"{url}/{response.json()['id']}", body, format="json"), field, says)
    assert state() == before


def test_the_soa_carries_an_unusual_but_legal_email(alice):
    email = "o'brien+dns.ops@example.com"
    response = alice.post("/v2/zones", {"name": ZONE, "email": email}, format="json")
    assert response.status_code == 202, response.json()
    [soa] = RecordSet.objects.get(zone_id=response.json()["id"], type="SOA").records
    rname = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SOA, soa).rname
    assert rname.labels[0] == b"o'brien+dns.ops" and rname.to_text() == "o'brien+dns\\.ops.example.com."


@pytest.mark.parametrize("body, field", [
    ({"name": 5}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"description": 5}, "description"),
    ({"description": "x" * 161}, "description"),
    ({"ns_records": [{"hostname": 5}]}, "ns_records[0].hostname"),
    ({"ns_records": [{"hostname": "nß.example.net."}]}, "ns_records[0].hostname"),
    ({"targets": [{"name": 5, "type": "bind9"}]}, "targets[0].name"),
    ({"targets": [{"name": "t", "type": 9}]}, "targets[0].type"),
    ({"targets": [{"name": "t", "type": "bind9", "description": 1}]}, "targets[0].description"),
    ({"targets": [{"name": "t", "type": "bind9", "masters": [5354]}]}, "targets[0].masters[0]"),
    ({"targets": [{"name": "t", "type": "bind9", "tsig_key": 1}]}, "targets[0].tsig_key"),
    ({"nameservers": [{"host": 5}]}, "nameservers[0].host"),
    ({"also_notifies": [{"host": False}]}, "also_notifies[0].host"),
    ({"notify_source": 127}, "notify_source"),
    ({"tsig_key": 1}, "tsig_key"),
    ({"catalog_zone": 1}, "catalog_zone"),
    ({"catalog_zone": "catalog.123."}, "catalog_zone"),
])
def test_bad_pool_input_is_400_and_writes_nothing(admin, body, field):
    before = state()
    assert_400(admin.post("/v2/pools", {"name": "other", **body}, format="json"), field)
    assert state() == before


def test_target_sync_since_must_be_a_string(admin, pool):
    target = pools.save_pool(pool, name="default", targets=[
        {"name": "t1", "type": "bind9", "masters": ["127.0.0.1:5354"], "options": {"rndc_key_secret": "c2VjcmV0"}}])
    target = target.targets.get()
    assert_400(admin.post(f"/v2/pools/{pool.id}/targets/{target.id}/sync", {"since": 0}, format="json"), "since",
               "not a number")
