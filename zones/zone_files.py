"""Zone files (RFC 1035 master files, `text/dns`): read one into recordsets checked by the API's own
rules, and write a zone out as one.

Reading uses dnspython's zone-file reader (directives, parentheses, escapes, $GENERATE) with a
collector in place of its transaction, so every record keeps the line it came from and an error
names it. Nothing is dropped silently: a record outside the zone, a CNAME beside other data, or a
type the API does not take is an error, where dnspython's zone reader would skip or replace it.
Each recordset then goes through zones.validation exactly as a POST of that recordset would.

The SOA names the zone (its owner), its email (RNAME) and its TTL; like Designate, dnsctl keeps the
zone's SOA and apex NS itself (the pool's), so the file's SOA and apex NS records are not imported.
"""
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.zonefile
from django.core.exceptions import ValidationError

from . import validation

MAX_ERRORS = 50  # a plan lists this many problems, then says how many more there were
DIRECTIVES = {"$ORIGIN", "$TTL", "$GENERATE"}  # never $INCLUDE: it would read the server's files
SOA, NS, CNAME = dns.rdatatype.SOA, dns.rdatatype.NS, dns.rdatatype.CNAME


@dataclass
class Problem:
    line: int | None
    field: str
    message: str

    def __str__(self):
        return f"line {self.line}: {self.message}" if self.line else self.message

    def as_dict(self) -> dict:
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclass
class RecordSet:
    name: str
    type: str
    ttl: int
    records: list[str]
    line: int


@dataclass
class ZoneFile:
    """What a file holds: the zone's name, email and TTL (from its SOA), its recordsets, what was set
    aside (the SOA and apex NS, which dnsctl keeps) and every problem found, each naming its line."""

    name: str | None = None
    email: str | None = None
    ttl: int | None = None
    soa_line: int | None = None
    recordsets: list[RecordSet] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0

    @property
    def record_count(self) -> int:
        return sum(len(rs.records) for rs in self.recordsets)

    def problem(self, line, field_name, message):
        if len(self.problems) < MAX_ERRORS:
            self.problems.append(Problem(line, field_name, message))
        else:
            self.more_problems += 1

    def invalid(self, line, exc: ValidationError):
        for field_name, messages in exc.message_dict.items():
            for message in messages:
                self.problem(line, field_name, message)

    def summary(self) -> str:
        """The problems as one message (an import task's), or "" when there are none."""
        text = "; ".join(str(p) for p in self.problems)
        return text + (f"; and {self.more_problems} more problems" if self.more_problems else "")


class TooManyRecords(Exception):
    pass


class _LineTokenizer(dns.tokenizer.Tokenizer):
    """dnspython's tokenizer, remembering the line each entry (record or directive) starts on."""

    entry_line = 1
    _at_start = True

    def get(self, want_leading=False, want_comment=False):
        line = self.line_number
        token = super().get(want_leading, want_comment)
        if token.is_eol_or_eof():
            self._at_start = True
        elif self._at_start and not token.is_comment():
            self.entry_line, self._at_start = line, False
        return token


class _AsciiNames(dns.name.IDNA2008Codec):
    """Names travel in A-label form (as in the API): a Unicode name is refused with the form to use."""

    def __init__(self):
        super().__init__(uts_46=True, allow_pure_ascii=True)

    def encode(self, label: str) -> bytes:
        if not label.isascii():
            a_label = super().encode(label).decode()
            raise dns.name.IDNAException(idna_exception=ValueError(f"'{label}' is not ASCII: use the A-label form "
                                                                   f"{a_label}"))
        return super().encode(label)


class _Collector:
    """Stands in for dnspython's transaction: the reader hands it each record; it keeps them in file
    order with their line (dnspython's own transaction would merge, skip and replace)."""

    def __init__(self, tok: _LineTokenizer, max_records: int):
        self.tok, self.max_records = tok, max_records
        self.records: list[tuple[dns.name.Name, int, object, int]] = []
        self.manager = self
        self.origin_set = False

    def origin_information(self):
        return dns.name.root, False, dns.name.root

    def check_put_rdataset(self, check):
        pass  # the CNAME rule is checked per name below, with the lines

    def _set_origin(self, origin):
        self.origin_set = True

    def add(self, name, ttl, rdata):
        if len(self.records) >= self.max_records:
            raise TooManyRecords()
        self.records.append((name, ttl, rdata, self.tok.entry_line))


def read(text: str, max_records: int) -> ZoneFile:
    """Read a zone file and check every record as the API would; problems name their lines.

    max_records bounds the work (a $GENERATE line can make millions): past it the file is refused."""
    result = ZoneFile()
    tok = _LineTokenizer(text, "<zone file>", idna_codec=_AsciiNames())
    collector = _Collector(tok, max_records)
    reader = dns.zonefile.Reader(tok, dns.rdataclass.IN, collector, allow_directives=DIRECTIVES)
    try:
        reader.read()
    except TooManyRecords:
        result.problem(None, "zone_records", f"Quota exceeded for zone_records: the file has more than "
                                             f"{max_records:,} records.")
        return result
    except dns.exception.SyntaxError as exc:
        # dnspython says "<zone file>:N: ..." where it stopped; the entry's first line is the one to name.
        detail = str(exc).split(": ", 1)[-1]
        result.problem(tok.entry_line, "zonefile", f"{detail} {_quote(text, tok.entry_line)}")
        return result
    except Exception as exc:  # noqa: BLE001 - the file is untrusted: whatever fails in it is its problem
        result.problem(tok.entry_line, "zonefile", f"{_reason(exc)} {_quote(text, tok.entry_line)}")
        return result
    _check(result, collector.records, collector.origin_set)
    return result


def _quote(text: str, line: int) -> str:
    """The line as written (shortened), so the error shows what it is about."""
    lines = text.split("\n", line)
    return f"({validation._short(lines[line - 1].strip())!r})" if line <= len(lines) else ""


def _reason(exc: Exception) -> str:
    if isinstance(exc, dns.name.IDNAException) and exc.kwargs.get("idna_exception"):
        return str(exc.kwargs["idna_exception"])
    return str(exc) or type(exc).__name__


def _check(result: ZoneFile, records: list, origin_set: bool):
    soas = [(name, ttl, rdata, line) for name, ttl, rdata, line in records if rdata.rdtype == SOA]
    if not soas:
        result.problem(None, "zonefile", "The file has no SOA record: its owner names the zone.")
        return
    for _, _, _, line in soas[1:]:
        result.problem(line, "type", "A zone has one SOA record; this is another.")
    apex, soa_ttl, soa, soa_line = soas[0]
    result.soa_line = soa_line
    try:
        result.name = validation.zone_name(apex.to_text(), "name")
    except ValidationError as exc:
        result.invalid(soa_line, exc)
        if not origin_set:
            result.problem(None, "zonefile", "The file has no $ORIGIN: relative names are taken from the root.")
        return
    result.ignored.append(f"line {soa_line}: the SOA record (dnsctl writes the zone's SOA, with the pool's "
                          "primary nameserver and its own serial; the email and TTL are taken from it)")
    try:
        result.email = validation.email(_rname_to_email(soa.rname), "email")
    except ValidationError as exc:
        result.invalid(soa_line, exc)
    try:
        result.ttl = validation.ttl(soa_ttl)
    except ValidationError as exc:
        result.invalid(soa_line, exc)
    _recordsets(result, apex, records, origin_set)


def _rname_to_email(rname: dns.name.Name) -> str:
    """The mailbox of a SOA RNAME: its first label is the local part (dots in it escaped)."""
    if len(rname.labels) < 3:
        return rname.to_text()
    local = rname.labels[0].decode("latin-1")
    return f"{local}@{dns.name.Name(rname.labels[1:]).to_text(omit_final_dot=True)}"


def _recordsets(result: ZoneFile, apex: dns.name.Name, records: list, origin_set: bool):
    """Group the records into recordsets (file order) and check each as POST .../recordsets does."""
    groups: dict[tuple[dns.name.Name, int], list] = {}
    for name, ttl, rdata, line in records:
        if rdata.rdtype == SOA:
            continue
        if rdata.rdtype == NS and name == apex:
            result.ignored.append(f"line {line}: NS {rdata} at the apex (the zone's NS records are its pool's)")
            continue
        groups.setdefault((name, rdata.rdtype), []).append((ttl, rdata, line))
    types_at: dict[dns.name.Name, list[int]] = {}
    for (name, rdtype), items in groups.items():
        ttl, _, line = items[0]
        rs = _recordset(result, apex, name, rdtype, items, origin_set)
        if rs is None:
            continue
        kinds = types_at.setdefault(name, [])
        if rdtype == CNAME and name == apex:
            result.problem(line, "type", f"A CNAME cannot be at the zone apex ({rs.name}).")
        elif (rdtype == CNAME and kinds) or (kinds and kinds[0] == CNAME):
            result.problem(line, "type", f"A CNAME must be the only recordset at its name ({rs.name}).")
        kinds.append(rdtype)
        result.recordsets.append(rs)


def _recordset(result: ZoneFile, origin: dns.name.Name, name, rdtype, items, origin_set) -> RecordSet | None:
    ttl, _, line = items[0]
    for other_ttl, _, other_line in items[1:]:
        if other_ttl != ttl:
            result.ignored.append(f"line {other_line}: TTL {other_ttl} differs from its recordset's first record "
                                  f"(line {line}); {ttl} is used, as BIND 9 does")
            break
    try:
        rtype = validation.recordset_type(dns.rdatatype.to_text(rdtype))
        owner = validation.name_in_zone(name, origin, name.to_text())
        validation.ttl(ttl)
        records = validation.parsed_records([rdata for _, rdata, _ in items], rtype, origin, name)
    except ValidationError as exc:
        result.invalid(line, exc)
        if not origin_set and not name.is_subdomain(origin):
            result.problem(line, "zonefile", "The file has no $ORIGIN: relative names are taken from the root.")
        return None
    return RecordSet(owner, rtype, ttl, records, line)


# --- writing ----------------------------------------------------------------------------------------


def render(origin: str, ttl: int, rrsets, header: str = "") -> str:
    """A zone file: $ORIGIN and $TTL, then one line per record, owners relative to the origin ("@"
    for the apex), rdata as stored (absolute names). rrsets: (owner, type, ttl or None, [rdata])
    with the SOA first; a None TTL is the zone's ($TTL)."""
    suffix = "." + origin
    lines = [f"; {line}" for line in header.splitlines()]
    lines += [f"$ORIGIN {origin}", f"$TTL {ttl}"]
    for owner, rtype, rs_ttl, records in rrsets:
        if owner == origin:
            relative = "@"
        elif owner.endswith(suffix):
            relative = owner[:-len(suffix)]
        else:
            relative = owner
        prefix = f"{relative}\t{rs_ttl}\tIN\t{rtype}\t" if rs_ttl is not None else f"{relative}\tIN\t{rtype}\t"
        lines.extend(prefix + rdata for rdata in records)
    lines.append("")
    return "\n".join(lines)
