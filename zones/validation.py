"""Input validation with dnspython: names, rdata, TTLs, emails. Raises Django ValidationError keyed by field.

The rule behind every check here: what validates must be servable. dnsctl's zones are loaded by
BIND9, Knot, PowerDNS and NSD as secondaries of MiniDNS, so anything one of them refuses to load
(and so refuses the whole zone's transfer), or serves wrongly, is refused here with a 400 instead.
What a server merely warns about is allowed. tests/test_validation_servers.py shows each refusal
against the real servers.
"""
import re

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

# Types users may manage. SOA is always dnsctl's; NS only below the apex (delegations).
USER_TYPES = {"A", "AAAA", "CAA", "CNAME", "DS", "MX", "NAPTR", "NS", "PTR", "SPF", "SRV", "SSHFP", "TXT"}
_LABEL = re.compile(r"^(\*|[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)$")  # owner names: letters, digits, '-', '_'
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")  # RFC 952/1123 host names: letters, digits, '-'
_DOT_ATOM = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")  # RFC 5322 3.2.3
_MAILBOX = EmailValidator()
_PLAIN_LABEL = re.compile(rb"^[A-Za-z0-9_*-]+\Z")  # labels dnspython writes out without escapes

MAX_MESSAGE = 65535
MAX_RRSET_WIRE = MAX_MESSAGE - 1024
"""The largest recordset, in octets of its uncompressed wire form (dnspython's to_wire: the owner
name written out in every record, names in rdata never compressed; an upper bound of what it takes
in any message, whatever a server compresses).

An RRset is never split across messages: a secondary answering a query for it over TCP must send
it whole in one message, and MiniDNS's AXFR puts whole RRsets in its messages. A DNS message is
at most 65,535 octets (TCP's two-octet length). Besides the RRset it carries
a 12-octet header, a question of up to 259 octets (a 255-octet name, type and class), a TSIG
record of up to 364 octets (a 255-octet key name, hmac-sha512's 64-octet MAC, 6 octets of BADTIME
data) and an OPT record with cookies (55 octets): 690 octets. 1,024 leaves 334 octets for other
EDNS options, and it is the margin MiniDNS keeps (workers.minidns splits only RRsets larger than
MAX_MESSAGE - 1024), so every accepted recordset also leaves MiniDNS whole."""

MAX_RECORDS_PER_RECORDSET = 100
"""BIND 9's default max-records-per-type (9.18.28 and later, CVE-2024-1737): a zone with a larger
RRset fails to transfer and load on a BIND9 secondary that keeps the default."""

# Names in rdata that must be host names (RFC 1035 NS and MX, RFC 2782 SRV; BIND's check-names
# and Designate agree), and those that may be any domain name; "." is allowed where it means
# "none" (RFC 7505 null MX, RFC 2782 "no service", RFC 3403 NAPTR without replacement).
_HOST_FIELDS = {"NS": ("target", False), "MX": ("exchange", True), "SRV": ("target", True)}
_NAME_FIELDS = {"CNAME": ("target", False), "PTR": ("target", False), "NAPTR": ("replacement", True)}

_POSIX_CLASSES = {"alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
                  "upper", "xdigit"}


def fail(field: str, message: str):
    raise ValidationError({field: [message]})


class Duplicate(ValidationError):
    """The name is taken: Designate's 409 `duplicate_<thing>` (duplicate_zone, duplicate_recordset...)."""

    def __init__(self, thing: str, field: str, message: str):
        super().__init__({field: [message]})
        self.error_type = f"duplicate_{thing}"


class OverQuota(ValidationError):
    """A write that would take the project past one of its quotas: Designate's 413 `over_quota`."""

    def __init__(self, resource: str, limit: int):
        super().__init__({resource: [f"Quota exceeded for {resource} (limit {limit})."]})
        self.resource, self.limit = resource, limit


def project_id(value, field="project_id") -> str:
    """A project id as the API takes it (a path segment, a header): 1 to 255 printable characters."""
    if not isinstance(value, str) or not 0 < len(value) <= 255 or not value.isprintable():
        fail(field, "A project id is 1 to 255 printable characters.")
    return value


def json_object(value, field: str, max_depth: int = 8) -> dict:
    """A JSON object that PostgreSQL's jsonb can store: no NUL character in any key or string, and
    not nested deeper than max_depth (backend options are flat; nesting is a mistake or an attack)."""
    def check(item, depth):
        if depth > max_depth:
            fail(field, f"Nested deeper than {max_depth} levels.")
        if isinstance(item, dict):
            for key, inner in item.items():
                check(key, depth + 1)
                check(inner, depth + 1)
        elif isinstance(item, list):
            for inner in item:
                check(inner, depth + 1)
        elif isinstance(item, str) and "\x00" in item:
            fail(field, "Null characters are not allowed.")

    if not isinstance(value, dict):
        fail(field, "Must be a JSON object.")
    check(value, 0)
    return value


def _short(value, limit: int = 80) -> str:
    """A value as quoted in an error message: never the whole megabyte a client sent."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# --- names --------------------------------------------------------------------------------------


class _ALabels(dns.name.IDNA2008Codec):
    """IDNA 2008 with the UTS 46 mapping (what browsers do), remembering whether any label was not
    ASCII: dnspython would quietly store such a name in A-label form; we tell the caller to."""

    def __init__(self):
        super().__init__(uts_46=True, allow_pure_ascii=True)
        self.used = False

    def encode(self, label: str) -> bytes:
        self.used |= not label.isascii()
        return super().encode(label)


def _a_label(value: str, field: str) -> str:
    """The A-label form (RFC 5891) of a name written in Unicode, relative if it is relative."""
    try:
        return dns.name.from_text(value, origin=None, idna_codec=_ALabels()).to_text().lower()
    except dns.exception.DNSException as exc:
        fail(field, f"'{_short(value)}' is not a valid internationalised domain name (IDNA 2008): {exc}")


def _parse_name(value: str, field: str, origin=None) -> dns.name.Name:
    """Names travel in A-label form: a Unicode name is refused with the form to use instead."""
    if not value.isascii():
        fail(field, f"'{_short(value)}' is not ASCII: use the A-label form {_a_label(value, field)}")
    try:
        return dns.name.from_text(value, origin=origin)
    except dns.name.LabelTooLong:
        fail(field, f"'{_short(value)}' has a label longer than 63 octets.")
    except dns.name.NameTooLong:
        fail(field, f"'{_short(value)}' is longer than 255 octets on the wire.")
    except dns.exception.DNSException as exc:
        fail(field, f"'{_short(value)}' is not a valid domain name: {exc}")


def _required_string(value, field: str):
    if not isinstance(value, str):
        fail(field, f"Must be a string, not {type(value).__name__}.")
    if not value:
        fail(field, "This field is required.")


def _labels(name: dns.name.Name) -> list[str]:
    """The labels of an absolute name, root excluded, in lower case (escapes kept visible). A label of
    letters, digits, '-', '_' and '*' has nothing to escape: read as is (an import reads 100,000)."""
    return [label.decode().lower() if _PLAIN_LABEL.match(label)
            else dns.name.Name([label]).to_text(omit_final_dot=True).lower() for label in name.labels[:-1]]


def _numeric_tld(value: str, labels: list[str], field: str):
    """RFC 3696 2: a top-level domain is never all digits (so `192.0.2.1.` is an address, not a name)."""
    if labels and labels[-1].isdigit():
        fail(field, f"'{_short(value)}' ends in the all-numeric top-level domain '{labels[-1]}', "
                    "which cannot exist (RFC 3696).")


def zone_name(value, field="name") -> str:
    """An absolute zone name: trailing dot, at least two labels, hostname characters only."""
    _required_string(value, field)
    name = _parse_name(value, field)
    if not value.endswith("."):
        fail(field, f"'{_short(value)}' is not a fully qualified domain name: it must end with a dot.")
    if len(name.labels) < 3:
        fail(field, f"'{value}' is a top-level domain; zones need at least two labels.")
    labels = _labels(name)
    for text in labels:
        if text == "*" or not _LABEL.match(text):
            fail(field, f"'{_short(value)}' has an invalid label '{text}' (letters, digits, '-' and '_' only).")
    _numeric_tld(value, labels, field)
    return name.to_text().lower()


def record_name(value, zone: str, field="name") -> str:
    """An absolute name inside `zone`; a name without a trailing dot is taken relative to the zone."""
    _required_string(value, field)
    origin = dns.name.from_text(zone)
    return name_in_zone(_parse_name(value, field, origin=origin), origin, value, field)


def name_in_zone(name: dns.name.Name, origin: dns.name.Name, value: str, field="name") -> str:
    """record_name's checks of a name parsed already (a zone file's owner name), as it was written."""
    if not name.is_subdomain(origin):
        fail(field, f"'{_short(value)}' is not inside the zone {origin}.")
    for i, text in enumerate(_labels(name)):
        if not _LABEL.match(text) or (text == "*" and i != 0):
            fail(field, f"'{_short(value)}' has an invalid label '{text}'.")
    return name.to_text().lower()


def _rdata_name(name: dns.name.Name, rtype: str, host: bool, root_ok: bool, field: str):
    """A name inside rdata: a host name (letters, digits, '-') where the type needs one, else
    the characters owner names may use; never a wildcard or an all-numeric TLD."""
    text = name.to_text()
    if name == dns.name.root:
        if not root_ok:
            fail(field, f"A {rtype} record cannot point to the root ('.').")
        return
    labels = _labels(name)
    for label in labels:
        if host and not _HOST_LABEL.match(label):
            fail(field, f"'{_short(text)}' is not a host name, which a {rtype} record needs: label '{label}' "
                        "may hold only letters, digits and '-' (not first or last).")
        if not host and (label == "*" or not _LABEL.match(label)):
            fail(field, f"'{_short(text)}' has an invalid label '{label}' (letters, digits, '-' and '_' only).")
    _numeric_tld(text, labels, field)


# --- TTL, email, type -------------------------------------------------------------------------


def ttl(value, field="ttl") -> int | None:
    if value is None:
        return None
    low, high = settings.DNSCTL["MIN_TTL"], settings.DNSCTL["MAX_TTL"]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        fail(field, f"TTL must be an integer between {low} and {high}.")
    return value


def email(value, field="email") -> str:
    """A mailbox the SOA RNAME can carry: ASCII, a dot-atom local part (no quotes, no spaces) of at
    most 63 octets (one DNS label), and a domain of two or more host-name labels."""
    if not isinstance(value, str) or value.count("@") != 1:
        fail(field, f"'{_short(value)}' is not an email address.")
    local, domain = value.split("@")
    if not value.isascii():
        if not local.isascii():
            fail(field, f"'{_short(value)}' is not ASCII: the mailbox name must be ASCII.")
        fail(field, f"'{_short(value)}' is not ASCII: use the A-label form "
                    f"{local}@{_a_label(domain, field)}")
    try:
        _MAILBOX(value)
    except ValidationError:
        fail(field, f"'{_short(value)}' is not an email address.")
    if not _DOT_ATOM.match(local.lower()):
        fail(field, f"'{_short(value)}' has a mailbox name that is not a dot-atom: letters, digits and "
                    "!#$%&'*+/=?^_`{|}~- in parts joined by single dots, without quotes or spaces.")
    labels = domain.lower().split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        fail(field, f"'{_short(value)}' needs a domain of two or more host-name labels (letters, digits, '-').")
    try:
        email_to_rname(value)
    except dns.name.LabelTooLong:
        fail(field, f"'{_short(value)}' has a mailbox name longer than 63 octets: the SOA record cannot hold it.")
    except dns.exception.DNSException as exc:
        fail(field, f"'{_short(value)}' cannot be written in a SOA record: {exc}")
    return value.lower()


def email_to_rname(value: str) -> str:
    """The SOA RNAME of a mailbox (RFC 1035 8): the local part is one label, so its dots and any other
    special character are escaped by dnspython, not by hand."""
    local, domain = value.split("@")
    labels = [local.encode()] + [label.encode() for label in domain.rstrip(".").split(".")] + [b""]
    return dns.name.Name(labels).to_text()


def recordset_type(value, field="type") -> str:
    text = value.upper() if isinstance(value, str) else ""
    if text == "SOA":
        fail(field, "SOA records are managed by dnsctl.")
    if text not in USER_TYPES:
        fail(field, f"'{_short(value)}' is not a supported record type ({', '.join(sorted(USER_TYPES))}).")
    return text


# --- records -----------------------------------------------------------------------------------


def records(values, rtype: str, zone: str, name: str, field="records") -> list[str]:
    """Parse every rdata for its type (relative names in rdata are taken relative to the zone) and
    check that the recordset `name`/`rtype` can be loaded and served by every server: names in
    rdata, per-type rules, at most MAX_RECORDS_PER_RECORDSET records and MAX_RRSET_WIRE octets."""
    if not isinstance(values, list) or not values:
        fail(field, "At least one record is required.")
    if len(values) > MAX_RECORDS_PER_RECORDSET:
        fail(field, f"A recordset holds at most {MAX_RECORDS_PER_RECORDSET} records (BIND 9 refuses larger "
                    f"ones by default); this one has {len(values)}.")
    origin, owner = dns.name.from_text(zone), dns.name.from_text(name)
    _owner_rules(rtype, origin, owner)
    return _rrset([_rdata(value, rtype, origin, field) for value in values], rtype, owner, field)


def parsed_records(rdatas: list, rtype: str, origin: dns.name.Name, owner: dns.name.Name,
                   field="records") -> list[str]:
    """records() for rdata a zone file's reader has parsed already: the same rules, without a second
    parse (an import checks 100,000 records this way)."""
    if len(rdatas) > MAX_RECORDS_PER_RECORDSET:
        fail(field, f"A recordset holds at most {MAX_RECORDS_PER_RECORDSET} records (BIND 9 refuses larger "
                    f"ones by default); this one has {len(rdatas)}.")
    _owner_rules(rtype, origin, owner)
    return _rrset([_check_rdata(rdata, rdata.to_text(), rtype, field) for rdata in rdatas], rtype, owner, field)


def _owner_rules(rtype: str, origin: dns.name.Name, owner: dns.name.Name):
    if rtype == "DS" and owner == origin:
        fail("type", "A DS record belongs in the parent zone, at the delegation: it cannot be at the zone apex.")
    if rtype == "NS" and owner.is_wild():
        fail("name", "NS records cannot have a wildcard name: BIND 9 refuses to load such a zone.")


def _rrset(rdatas: list, rtype: str, owner: dns.name.Name, field: str) -> list[str]:
    """The recordset's rules: identical records once, one CNAME, a size that fits in one message."""
    parsed = {}
    for rdata in rdatas:
        parsed.setdefault(rdata.to_text(), rdata)
    if rtype == "CNAME" and len(parsed) > 1:
        fail(field, "A CNAME recordset holds exactly one record.")
    # RRset.to_wire() record by record (it cannot write an rdata over 65,535 octets): the owner name;
    # type, class, TTL and RDLENGTH (10 octets); the rdata.
    size = sum(len(owner.to_wire()) + 10 + len(rdata.to_wire()) for rdata in parsed.values())
    if size > MAX_RRSET_WIRE:
        fail(field, f"The recordset is {size:,} octets on the wire; a recordset must fit in one DNS message: "
                    f"at most {MAX_RRSET_WIRE:,} octets.")
    return list(parsed)


def _rdata(value, rtype: str, origin: dns.name.Name, field: str) -> dns.rdata.Rdata:
    """One record's rdata, parsed and checked by the rules of its type."""
    if not isinstance(value, str) or not value.strip():
        fail(field, f"'{_short(value)}' is not a record for type {rtype}.")
    codec = _ALabels()
    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value, origin=origin,
                                    relativize=False, idna_codec=codec)
    except (dns.exception.DNSException, ValueError) as exc:
        fail(field, f"'{_short(value)}' is not valid {rtype} data: {exc}")
    if codec.used:
        fail(field, f"'{_short(value)}' has a name that is not ASCII: use the A-label form {rdata.to_text()}")
    return _check_rdata(rdata, value, rtype, field)


def _check_rdata(rdata: dns.rdata.Rdata, value: str, rtype: str, field: str) -> dns.rdata.Rdata:
    """The rules of a record's type, on its parsed rdata (value: as it was written)."""
    for fields, host in ((_HOST_FIELDS, True), (_NAME_FIELDS, False)):
        if rtype in fields:
            attribute, root_ok = fields[rtype]
            _rdata_name(getattr(rdata, attribute), rtype, host, root_ok, field)
    if rtype == "NAPTR":
        problem = naptr_regexp_problem(rdata.regexp)
        if problem:
            fail(field, f"'{_short(value)}' has a NAPTR regexp that BIND 9 refuses (RFC 3402 4.1): {problem}.")
    if rtype == "CAA" and not rdata.value:
        fail(field, f"'{_short(value)}' has an empty CAA value, which PowerDNS serves as \"\\000\"; "
                    "write \";\" to allow no CA (RFC 8659 4.2).")
    return rdata


def naptr_regexp_problem(regexp: bytes) -> str | None:
    """Why a NAPTR regexp field is not a substitution expression (RFC 3402 4.1:
    delim ERE delim replacement delim flags) that BIND 9 loads, or None when it is one (or empty).

    The ERE must be a POSIX extended regular expression that BIND's validator accepts; the check
    here is as strict or stricter (it refuses equivalence classes and collating symbols, which
    nobody uses in ENUM)."""
    if not regexp:
        return None
    if b"\0" in regexp:
        return "it holds a NUL octet"
    text = regexp.decode("latin-1")
    delim = text[0]
    if delim.isdigit() or delim in "\\i":
        return "the delimiter cannot be a digit, a backslash or 'i'"
    parts, current, i = [], "", 1
    while i < len(text):
        if text[i] == "\\":
            if i + 1 == len(text):
                return "it ends in a lone backslash"
            current += text[i:i + 2]
            i += 2
            continue
        if text[i] == delim:
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    parts.append(current)
    if len(parts) != 3:
        return f"it must be {delim}regex{delim}replacement{delim} with an optional 'i' flag"
    ere, replacement, flags = parts
    if set(flags) - {"i"}:
        return "the only flag is 'i'"
    try:
        groups = _ere_groups(ere)
    except ValueError as exc:
        return str(exc)
    for ref in re.findall(r"\\(.)", replacement):
        if ref == "0":
            return "\\0 is not a back-reference"
        if ref.isdigit() and int(ref) > groups:
            return f"\\{ref} refers to a group the regex does not have"
    return None


def _ere_groups(ere: str) -> int:
    """The number of groups of a POSIX extended regular expression; ValueError says why it is not one."""
    if not ere:
        raise ValueError("the regex is empty")
    groups = depth = 0
    atom = False  # there is something a repeat can apply to
    repeated = False  # ...but it was a repeat or an anchor already, which POSIX does not repeat
    group_start = False  # just after "(": "()" is allowed, "(|" is not
    i = 0
    while i < len(ere):
        c = ere[i]
        if c == "\\":
            if i + 1 == len(ere):
                raise ValueError("the regex ends in a lone backslash")
            ref = ere[i + 1]
            if ref in "123456789" and int(ref) > groups:
                raise ValueError(f"\\{ref} in the regex refers to a group before it exists")
            i, atom, repeated = i + 2, True, False
        elif c == "[":
            i, atom, repeated = _bracket_end(ere, i), True, False
        elif c in "*+?" or (c == "{" and ere[i + 1:i + 2].isdigit()):
            if not atom or repeated:
                raise ValueError(f"'{c}' in the regex follows nothing it can repeat")
            i, repeated = (_bound_end(ere, i) if c == "{" else i + 1), True
        elif c == "(":
            groups, depth, i, atom, repeated, group_start = groups + 1, depth + 1, i + 1, False, False, True
            continue
        elif c == ")":
            if not depth:
                raise ValueError("the regex closes a group it never opened")
            if not atom and not group_start:
                raise ValueError("the regex has an empty alternative")
            depth, i, atom, repeated = depth - 1, i + 1, True, False
        elif c == "|":
            if not atom:
                raise ValueError("the regex has an empty alternative")
            i, atom, repeated = i + 1, False, False
        else:  # "^" and "$" are anchors: nothing may repeat them
            i, atom, repeated = i + 1, True, c in "^$"
        group_start = False
    if depth:
        raise ValueError("the regex leaves a group open")
    if not atom:
        raise ValueError("the regex ends in an empty alternative")
    return groups


def _bound_end(ere: str, start: int) -> int:
    """The index after a bound {m}, {m,} or {m,n} (0 <= m <= n <= 255, RE_DUP_MAX) starting at start."""
    match = re.match(r"\{(\d+)(,(\d*))?\}", ere[start:])
    if not match:
        raise ValueError("the regex has an unfinished bound '{'")
    low, high = int(match[1]), int(match[3]) if match[3] else None
    if low > 255 or (high is not None and (high > 255 or high < low)):
        raise ValueError("a bound in the regex must be 0 to 255, low before high")
    return start + match.end()


def _bracket_end(ere: str, start: int) -> int:
    """The index after the bracket expression starting at start ("[a-z]", "[^]x]", "[[:digit:]]")."""
    i = start + 1
    if ere[i:i + 1] == "^":
        i += 1
    first, previous = True, None
    while i < len(ere):
        c = ere[i]
        if c == "]" and not first:
            return i + 1
        if ere.startswith("[:", i):
            end = ere.find(":]", i + 2)
            if end < 0 or ere[i + 2:end] not in _POSIX_CLASSES:
                raise ValueError("the regex names an unknown character class")
            i, previous = end + 2, None
        elif ere.startswith("[=", i) or ere.startswith("[.", i):
            raise ValueError("equivalence classes and collating symbols are not supported in the regex")
        elif c == "-" and previous is not None and ere[i + 1:i + 2] not in ("]", ""):
            if ere[i + 1] < previous:
                raise ValueError("a range in the regex runs backwards")
            i, previous = i + 2, None
        else:
            i, previous = i + 1, c
        first = False
    raise ValueError("the regex leaves a bracket expression '[' open")
