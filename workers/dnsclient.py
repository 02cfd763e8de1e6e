"""Small DNS client helpers (dnspython) used to NOTIFY targets and poll their SOA serial."""

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


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
    name = dns.name.from_text(zone_name)
    query = dns.message.make_query(name, dns.rdatatype.SOA)
    # Flags first: set_opcode() stores the opcode inside flags, so assigning
    # flags afterwards would silently turn this back into a plain QUERY.
    query.flags = dns.flags.AA
    query.set_opcode(dns.opcode.NOTIFY)
    if serial is not None:
        # Build from a dns.name: a text owner would be relative and fail to render.
        query.answer.append(dns.rrset.from_text(
            name, 0, dns.rdataclass.IN, dns.rdatatype.SOA, f". . {int(serial)} 3600 600 86400 300"))

    last_error: Exception | None = None
    for _ in range(1 + max(0, retries)):
        try:
            response = dns.query.udp(query, host, port=port, timeout=timeout, source=source or None)
            return response.rcode()
        except (dns.exception.DNSException, OSError) as exc:
            last_error = exc
    raise DNSClientError(f"NOTIFY {name} to {host}:{port} failed after {1 + max(0, retries)} "
                         f"attempt(s): {_describe(last_error)}")


def query_soa_serial(zone_name: str, host: str, port: int, timeout: float = 2.0) -> int | None:
    """Return the SOA serial host:port serves for zone_name, or None if it does not serve it.

    "Serves" means an authoritative (AA) NOERROR answer with a SOA owned by
    exactly zone_name; REFUSED/NOTAUTH/NXDOMAIN/SERVFAIL, a referral or a
    parent's SOA all mean None. Timeouts and network errors raise DNSClientError,
    so callers can tell "not there" from "could not ask".
    """
    name = dns.name.from_text(zone_name)
    query = dns.message.make_query(name, dns.rdatatype.SOA)
    query.flags &= ~dns.flags.RD  # ask the server itself, not a resolver path
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        raise DNSClientError(f"SOA query {name} to {host}:{port} failed: {_describe(exc)}") from exc
    if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
        return None
    rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.SOA)
    if not rrset:
        return None
    return rrset[0].serial


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return str(exc)  # "The DNS operation timed out after 2.002 seconds"
    return f"{type(exc).__name__}: {exc}"
