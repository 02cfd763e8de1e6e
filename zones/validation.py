"""Input validation with dnspython: names, rdata, TTLs. Raises Django ValidationError keyed by field."""
import re

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from django.conf import settings
from django.core.exceptions import ValidationError

# Types users may manage. SOA is always dnsctl's; NS only below the apex (delegations).
USER_TYPES = {"A", "AAAA", "CAA", "CNAME", "DS", "MX", "NAPTR", "NS", "PTR", "SPF", "SRV", "SSHFP", "TXT"}
_LABEL = re.compile(r"^(\*|[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)$")


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


def zone_name(value, field="name") -> str:
    """An absolute zone name: trailing dot, at least two labels, hostname characters only."""
    if not isinstance(value, str) or not value:
        fail(field, "This field is required.")
    if not value.endswith("."):
        fail(field, f"'{value}' is not a fully qualified domain name: it must end with a dot.")
    name = _parse_name(value, field)
    if len(name.labels) < 3:
        fail(field, f"'{value}' is a top-level domain; zones need at least two labels.")
    for label in name.labels[:-1]:
        text = label.decode("ascii", "replace").lower()
        if text == "*" or not _LABEL.match(text):
            fail(field, f"'{value}' has an invalid label '{text}' (letters, digits, '-' and '_' only).")
    return name.to_text().lower()


def record_name(value, zone: str, field="name") -> str:
    """An absolute name inside `zone`; a name without a trailing dot is taken relative to the zone."""
    if not isinstance(value, str) or not value:
        fail(field, "This field is required.")
    origin = dns.name.from_text(zone)
    name = _parse_name(value, field, origin=origin)
    if not name.is_subdomain(origin):
        fail(field, f"'{value}' is not inside the zone {zone}.")
    for i, label in enumerate(name.labels[:-1]):
        text = label.decode("ascii", "replace").lower()
        if not _LABEL.match(text) or (text == "*" and i != 0):
            fail(field, f"'{value}' has an invalid label '{text}'.")
    return name.to_text().lower()


def _parse_name(value: str, field: str, origin=None) -> dns.name.Name:
    try:
        return dns.name.from_text(value, origin=origin)
    except dns.name.LabelTooLong:
        fail(field, f"'{value}' has a label longer than 63 characters.")
    except dns.name.NameTooLong:
        fail(field, f"'{value}' is longer than 255 characters.")
    except dns.exception.DNSException as exc:
        fail(field, f"'{value}' is not a valid domain name: {exc}")


def ttl(value, field="ttl") -> int | None:
    if value is None:
        return None
    low, high = settings.DNSCTL["MIN_TTL"], settings.DNSCTL["MAX_TTL"]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        fail(field, f"TTL must be an integer between {low} and {high}.")
    return value


def email(value, field="email") -> str:
    if not isinstance(value, str) or value.count("@") != 1:
        fail(field, f"'{value}' is not an email address.")
    local, domain = value.split("@")
    if not local or not domain:
        fail(field, f"'{value}' is not an email address.")
    try:
        rname = dns.name.from_text(local.replace(".", "\\.") + "." + domain.rstrip(".") + ".")
    except dns.exception.DNSException as exc:
        fail(field, f"'{value}' cannot be written in a SOA record: {exc}")
    if len(rname.labels) < 4:  # the local part, two or more domain labels, the root
        fail(field, f"'{value}' needs a domain with at least two labels.")
    return value.lower()


def email_to_rname(value: str) -> str:
    local, domain = value.split("@")
    return local.replace(".", "\\.") + "." + domain.rstrip(".") + "."


def recordset_type(value, field="type") -> str:
    text = str(value or "").upper()
    if text == "SOA":
        fail(field, "SOA records are managed by dnsctl.")
    if text not in USER_TYPES:
        fail(field, f"'{value}' is not a supported record type ({', '.join(sorted(USER_TYPES))}).")
    return text


def records(values, rtype: str, zone: str, field="records") -> list[str]:
    """Parse every rdata for its type; relative names in rdata are taken relative to the zone."""
    if not isinstance(values, list) or not values:
        fail(field, "At least one record is required.")
    origin = dns.name.from_text(zone)
    parsed = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            fail(field, f"{value!r} is not a record for type {rtype}.")
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value,
                                        origin=origin, relativize=False)
        except (dns.exception.DNSException, ValueError) as exc:
            fail(field, f"'{value}' is not valid {rtype} data: {exc}")
        text = rdata.to_text()
        if text not in parsed:
            parsed.append(text)
    if rtype == "CNAME" and len(parsed) > 1:
        fail(field, "A CNAME recordset holds exactly one record.")
    return parsed
