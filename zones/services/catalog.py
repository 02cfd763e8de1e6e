"""A catalog pool's catalog zone serial (RFC 9432): bumped once per burst of membership changes
(workers.catalog debounces them)."""
from django.db import transaction

from zones.models import Pool
from zones.serials import next_serial


@transaction.atomic
def bump_catalog(pool_id) -> tuple[str, int] | None:
    """Give the pool's catalog zone a newer serial (max(serial + 1, unix time)); (name, serial), or
    None if the pool has no catalog. Called after membership changes committed, never before."""
    pool = Pool.objects.select_for_update().filter(id=pool_id, catalog_zone__isnull=False).first()
    if pool is None:
        return None
    pool.catalog_serial = next_serial(pool.catalog_serial)
    Pool.objects.filter(id=pool.id).update(catalog_serial=pool.catalog_serial)
    return pool.catalog_zone, pool.catalog_serial

