"""Per-process copies of what rarely changes and every write reads: TLDs, blacklists, pools (their
catalog zones, NS records, who may use them) and quotas.

Each copy is valid for one version of that data. On PostgreSQL, triggers (migration 0017) set the
one row of dnsctl_config_version to a new number from a sequence in the same transaction as any
change to those tables (the API, the admin, a shell, TRUNCATE), so:
- a writer sees a new version exactly when it can see the change (both commit together);
- a number is never used twice, even by a change that rolled back (sequences do not roll back), so a
  copy read inside a transaction that then rolled back can never match a later version.
A write reads the version in a statement it runs anyway (the zone's or the project's lock) and
passes it here; a copy made from a read later in the same transaction may be newer than its version,
never older, which only costs a reload. Without PostgreSQL there is no version and every call reads.
"""
from django.db import connection

VERSION_SQL = "SELECT n FROM dnsctl_config_version"
MAX_ENTRIES = 10_000  # quotas are kept per project: forget them all rather than grow without bound

_copies: dict = {}  # key -> (version, value)


def version() -> int | None:
    """The current version, for a caller that has not read it with its lock (one small query)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(VERSION_SQL)
        row = cursor.fetchone()
    return row[0] if row else None


def get(key, version: int | None, load):
    """load()'s value, from this process's copy when it was made at this version."""
    if version is None:
        return load()
    hit = _copies.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    value = load()
    if len(_copies) >= MAX_ENTRIES:
        _copies.clear()
    _copies[key] = (version, value)
    return value
