"""Names a tenant may not take, and the TLDs and blacklists that say so.

A zone name is refused when it
- equals, encloses or sits inside a pool's catalog zone (RFC 9432): the catalog belongs to the pool,
  and MiniDNS would otherwise serve a tenant's zone as the catalog (everyone, admins too);
- is not strictly under a TLD, once any TLD is defined (everyone, as in Designate);
- is a public suffix (`com.`, `co.uk.`, `github.io.`: the Public Suffix List's ICANN and private
  sections, bundled with the `publicsuffixlist` package, so no network is needed) (non-admins);
- matches a blacklist pattern (`re.search`, as Designate) (non-admins).
Refusals name the field, never the catalog or the pattern that matched.
"""
import functools
import itertools
import logging
import re

import regex
from django.db import IntegrityError, transaction
from django.db.models import Q
from publicsuffixlist import PublicSuffixList

from . import cached, validation
from .models import Blacklist, Pool, Tld, Zone

log = logging.getLogger(__name__)

# Wall-clock budget of one blacklist pattern against one name; past it the name counts as matched
# (Designate does the same), so a pattern with catastrophic backtracking cannot hang a request.
BLACKLIST_TIMEOUT = 0.1
MAX_PATTERN = 255  # Designate's
MAX_DESCRIPTION = 160  # Designate's
_TLD_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


# --- zone names ---------------------------------------------------------------------------------


def check_zone_name(name: str, *, admin: bool, version: int | None = None) -> None:
    """Refuse (a 400 naming `name`) a zone name this caller may not take; `name` is already a valid
    absolute zone name (validation.zone_name). version: zones.cached's, if the caller has read it."""
    found = _reserved_for(name, reserved_names(version))
    if found["catalog"]:
        validation.fail("name", f"{name} is reserved for the DNS service: it is, contains or is inside "
                                "a name the service itself uses.")
    _check_tlds(name, found["tld"])
    if admin:
        return
    if _public_suffixes().is_public(name[:-1]):
        validation.fail("name", f"{name} is a public suffix; a zone can only be made below it "
                                f"(e.g. example.{name}).")
    if _blacklisted(name, found["blacklist"]):
        validation.fail("name", f"{name} is reserved and cannot be used for a zone.")


def reserved_names(version: int | None = None) -> dict:
    """Every pool's catalog zone, every TLD and every blacklist pattern: small tables that change
    rarely, kept per process for a config version (zones.cached) instead of read on every create."""
    if version is None:
        version = cached.version()
    return cached.get("reserved", version, lambda: {
        "catalogs": list(Pool.objects.exclude(catalog_zone=None).order_by().values_list("catalog_zone", flat=True)),
        "tlds": frozenset(Tld.objects.order_by().values_list("name", flat=True)),
        "blacklist": list(Blacklist.objects.order_by().values_list("pattern", flat=True)),
    })


def _reserved_for(name: str, names: dict) -> dict[str, list[str]]:
    """What the checks of a new zone name use: the overlapping catalog zones, the TLDs among the
    name's suffixes (and one TLD more, if any exists: then TLDs apply), and the blacklist patterns."""
    suffixes = _self_and_ancestors(name)
    tlds = names["tlds"]
    among = [s[:-1] for s in suffixes if s[:-1] in tlds]
    return {"catalog": [c for c in names["catalogs"] if c in suffixes or c.endswith("." + name)],
            "tld": among or list(itertools.islice(tlds, 1)),
            "blacklist": names["blacklist"]}


def check_catalog_zone(catalog: str, pool_id) -> None:
    """Refuse (a 400 naming `catalog_zone`) a pool catalog that equals, encloses or sits inside a live
    zone or another pool's catalog: MiniDNS answers a catalog's names before any zone's."""
    suffixes = _self_and_ancestors(catalog)
    zone = (Zone.objects.filter(Q(name__in=suffixes) | Q(name__endswith="." + catalog), deleted_at__isnull=True)
            .values_list("name", flat=True).first())
    if zone:
        validation.fail("catalog_zone", f"{catalog} overlaps the zone {zone} (it is, contains or is inside it); "
                                        "a catalog zone must be a name no zone uses.")
    other = _catalogs_overlapping(catalog, suffixes).exclude(id=pool_id).values_list("name", "catalog_zone").first()
    if other:
        validation.fail("catalog_zone", f"{catalog} overlaps the catalog zone {other[1]} of pool {other[0]}.")


def _self_and_ancestors(name: str) -> list[str]:
    """'a.b.c.' -> ['a.b.c.', 'b.c.', 'c.']"""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _catalogs_overlapping(name: str, suffixes: list[str]):
    return Pool.objects.filter(Q(catalog_zone__in=suffixes) | Q(catalog_zone__endswith="." + name))


def _check_tlds(name: str, tlds: list[str]) -> None:
    """As Designate's _is_valid_zone_name: with TLDs defined, a zone sits strictly below one. tlds:
    those among the name's suffixes, and maybe another (any at all means TLDs are defined)."""
    suffixes = {s[:-1] for s in _self_and_ancestors(name)}
    found = suffixes.intersection(tlds)
    if name[:-1] in found:
        validation.fail("name", f"{name} is a TLD; a zone can only be made below it.")
    if not found and tlds:
        validation.fail("name", f"{name} is not under a TLD this service accepts.")


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package: read from disk, once


def _blacklisted(name: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        try:
            if regex.search(pattern, name, timeout=BLACKLIST_TIMEOUT):
                return True
        except TimeoutError:
            log.error("blacklist pattern %r took over %ss on %s: counted as a match", pattern, BLACKLIST_TIMEOUT, name)
            return True
        except regex.error as exc:  # stored behind the API's back: refuse rather than let names through
            log.error("blacklist pattern %r does not compile (%s): counted as a match", pattern, exc)
            return True
    return False


# --- TLDs and blacklists (admins: API and Django admin) -------------------------------------------


def tld_name(value, field="name") -> str:
    """A TLD as Designate writes it: labels of letters, digits, '-' and '_', no trailing dot; lower case."""
    if not isinstance(value, str) or not value:
        validation.fail(field, "This field is required.")
    if value.endswith("."):
        validation.fail(field, f"'{value}' ends with a dot; a TLD is written without it (e.g. 'com', 'co.uk').")
    name = value.lower()
    if len(name) > 253 or not all(_TLD_LABEL.match(label) for label in name.split(".")):
        validation.fail(field, f"'{value}' is not a TLD: dot-separated labels of at most 63 letters, digits, "
                               "'-' and '_' (not at either end), in A-label form for IDNs (e.g. 'xn--p1ai').")
    return name


def blacklist_pattern(value, field="pattern") -> str:
    """A regular expression of at most 255 characters that compiles."""
    if not isinstance(value, str) or not value:
        validation.fail(field, "This field is required.")
    if len(value) > MAX_PATTERN:
        validation.fail(field, f"A pattern has at most {MAX_PATTERN} characters.")
    try:
        regex.compile(value)
    except regex.error as exc:
        validation.fail(field, f"'{value}' is not a valid regular expression: {exc}.")
    return value


def description(value, field="description") -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        validation.fail(field, f"A description is a string of at most {MAX_DESCRIPTION} characters.")
    return value


def save_tld(tld: Tld | None, **fields) -> Tld:
    """Create (tld None) or change a TLD; fields: name, description (those given change)."""
    tld = tld or Tld()
    if "name" in fields or tld._state.adding:
        tld.name = tld_name(fields.get("name"))
    if "description" in fields:
        tld.description = description(fields["description"])
    return _save(tld, "tld", "name", f"A TLD named {tld.name} already exists.")


def save_blacklist(blacklist: Blacklist | None, **fields) -> Blacklist:
    """Create (blacklist None) or change a blacklist; fields: pattern, description (those given change)."""
    blacklist = blacklist or Blacklist()
    if "pattern" in fields or blacklist._state.adding:
        blacklist.pattern = blacklist_pattern(fields.get("pattern"))
    if "description" in fields:
        blacklist.description = description(fields["description"])
    return _save(blacklist, "blacklist", "pattern", "A blacklist with this pattern already exists.")


def _save(obj, thing: str, field: str, message: str):
    """Save; the unique constraint (name, pattern) is Designate's 409 duplicate_<thing>. The savepoint
    keeps a caller's transaction usable after the refusal."""
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise validation.Duplicate(thing, field, message) from None
    return obj
