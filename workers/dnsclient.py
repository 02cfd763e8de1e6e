"""Small DNS client helpers used to NOTIFY targets and poll their SOA serial.

Both messages are written and read as wire here, not through dnspython's message objects: the worker
sends a SOA query per zone and nameserver at every poll, and dnspython spent about 0.3 ms of CPU
building each query and parsing its answer (10-15% of the worker's samples under load); this takes a
few microseconds. Only what these two exchanges need is read: the header, the question echoed back,
and the answer's SOA serial (names other than a pointer to the question through dnspython); anything
malformed is a DNSClientError.
"""
import ipaddress
import secrets
import socket
import struct
import time

import dns.exception
import dns.name

QR, AA, TC = 0x8000, 0x0400, 0x0200
OPCODE_QUERY, OPCODE_NOTIFY = 0, 4
NOERROR = 0
SOA, IN = 6, 1
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_BARE_ERRORS = {1, 2, 4, 5}  # FORMERR, SERVFAIL, NOTIMP, REFUSED: answers that may leave the question out
_TO_QUESTION = b"\xc0\x0c"  # a compression pointer to offset 12: the question's name


class DNSClientError(Exception):
    """No usable answer: timeout, network error, or a malformed/mismatched response."""


def send_notify(zone_name: str, host: str, port: int, serial: int | None = None,
                timeout: float = 2.0, retries: int = 2, source: str | None = None) -> int:
    """Send a NOTIFY for zone_name over UDP; return the response rcode (0 = NOERROR = accepted).

    Sent up to 1 + retries times, because UDP may be lost; raises DNSClientError
    when every attempt times out or fails. With serial, the SOA is included
    as a hint (RFC 1996 3.7). source is the address to send from (the pool's notify_source):
    Knot and NSD accept NOTIFY only from addresses their ACLs name, PowerDNS only from the
    zone's primary.
    """
    qname = _name_wire(zone_name)
    flags = OPCODE_NOTIFY << 11 | AA
    answer = b""
    if serial is not None:  # owner: a pointer to the question's name; MNAME and RNAME the root
        answer = _TO_QUESTION + _RR_FIXED.pack(SOA, IN, 0, 22) + b"\x00\x00" + struct.pack(
            "!IIIII", int(serial) & 0xFFFFFFFF, 3600, 600, 86400, 300)
    last_error = "no attempt"
    for _ in range(1 + max(0, retries)):
        try:
            _, response_flags, _ = _exchange(qname, flags, answer, host, port, timeout, source)
            return response_flags & 0xF
        except (OSError, DNSClientError) as exc:
            last_error = _describe(exc)
    raise DNSClientError(f"NOTIFY {_text(zone_name)} to {host}:{port} failed after {1 + max(0, retries)} "
                         f"attempt(s): {last_error}")


def query_soa_serial(zone_name: str, host: str, port: int, timeout: float = 2.0) -> int | None:
    """Return the SOA serial host:port serves for zone_name, or None if it does not serve it.

    "Serves" means an authoritative (AA) NOERROR answer with a SOA owned by
    exactly zone_name; REFUSED/NOTAUTH/NXDOMAIN/SERVFAIL, a referral or a
    parent's SOA all mean None. Timeouts and network errors raise DNSClientError,
    so callers can tell "not there" from "could not ask". No recursion desired:
    the server itself is asked.
    """
    qname = _name_wire(zone_name)
    try:
        wire, flags, offset = _exchange(qname, OPCODE_QUERY << 11, b"", host, port, timeout)
    except (OSError, DNSClientError) as exc:
        raise DNSClientError(f"SOA query {_text(zone_name)} to {host}:{port} failed: {_describe(exc)}") from exc
    if flags & 0xF != NOERROR or not flags & AA:
        return None
    try:
        return _soa_serial(wire, offset, qname)
    except (IndexError, struct.error, ValueError, dns.exception.DNSException) as exc:
        raise DNSClientError(f"SOA query {_text(zone_name)} to {host}:{port}: malformed answer") from exc


def _exchange(qname: bytes, flags: int, answer: bytes, host: str, port: int, timeout: float,
              source: str | None = None) -> tuple[bytes, int, int]:
    """Send one query (question qname SOA IN, optional answer section) and wait for its response:
    (wire, the response's flags, the offset past its question). Datagrams that are not the answer to
    this query (another id, not a response, another question) are ignored until the timeout; an error
    without the question (RFC 1035 leaves it out of FORMERR, SERVFAIL, NOTIMP and REFUSED) is the answer."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise DNSClientError(f"{host!r} is not an IP address") from None
    query_id = secrets.randbits(16)
    question = qname + b"\x00\x06\x00\x01"
    query = _HEADER.pack(query_id, flags, 1, 1 if answer else 0, 0, 0) + question + answer
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if source:
            sock.bind((source, 0))
        sock.connect((host, port))  # the kernel drops datagrams from anyone else
        sock.send(query)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s")
            sock.settimeout(left)
            try:
                wire = sock.recv(65535)
            except socket.timeout:
                raise TimeoutError(f"timed out after {timeout:g} s") from None
            if len(wire) < _HEADER.size:
                continue
            rid, rflags, qdcount = _HEADER.unpack_from(wire)[:3]
            end = _HEADER.size + len(question)
            if not (rid == query_id and rflags & QR and (rflags >> 11) & 0xF == (flags >> 11) & 0xF):
                continue
            if qdcount == 1 and wire[_HEADER.size:end].lower() == question.lower():
                return wire, rflags, end
            if qdcount == 0 and rflags & 0xF in _BARE_ERRORS:  # NSD refuses a NOTIFY so, as dnspython allows
                return wire, rflags, _HEADER.size


def _soa_serial(wire: bytes, offset: int, qname: bytes) -> int | None:
    """The serial of the answer section's SOA owned by qname, or None. An owner that points at the
    question (as servers write it) is qname, checked above; any other is read by dnspython. The serial is
    the 20 octets' first four at the end of the SOA's rdata, after the two names (RFC 1035 3.3.13)."""
    ancount = _HEADER.unpack_from(wire)[3]
    want = None
    for _ in range(ancount):
        if wire[offset:offset + 2] == _TO_QUESTION:
            ours, offset = True, offset + 2
        else:
            owner, used = dns.name.from_wire(wire, offset)
            want = want or dns.name.from_wire(qname, 0)[0]
            ours, offset = owner == want, offset + used
        rtype, rclass, _, rdlength = _RR_FIXED.unpack_from(wire, offset)
        offset += _RR_FIXED.size
        if offset + rdlength > len(wire):
            raise ValueError("record past the end")
        if rtype == SOA and rclass == IN and ours:
            if rdlength < 22:  # two names of at least one octet, then five 32-bit fields
                raise ValueError("SOA rdata too short")
            return struct.unpack_from("!I", wire, offset + rdlength - 20)[0]
        offset += rdlength
    return None


def _name_wire(zone_name: str) -> bytes:
    return dns.name.from_text(zone_name).to_wire()


def _text(zone_name: str) -> str:
    return zone_name if zone_name.endswith(".") else zone_name + "."


def _describe(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return str(exc)  # "timed out after 2 s"
    return f"{type(exc).__name__}: {exc}"
