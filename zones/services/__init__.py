"""The services package's facade: every public name of its concern modules, for callers written
against the former single module (`from zones import services`; `services.create_zone(...)`).
New code imports the concern module (selectors, writes, pools, pipeline, sweeps, catalog);
private helpers are not re-exported."""
from .selectors import (  # noqa: F401
    default_pool, find_target, nameservers_of, pool_allows, pools_for, propagation_of, zones_for,
)
from .writes import (  # noqa: F401
    create_recordset, create_zone, delete_recordset, delete_zone, update_recordset, update_zone,
)
from .pools import (  # noqa: F401
    delete_pool, put_also_notify, put_nameserver, put_ns_record, put_target, remove_also_notify,
    remove_nameserver, remove_ns_record, remove_target, save_pool, target_options,
)
from .pipeline import (  # noqa: F401
    CHANGE, SYNC, TARGET_SYNC, Mode, ZoneRef, change_ref, claim_changes, current_refs, finish, finish_sync,
    finish_zone_action, pool_work, record_nameserver_result, record_nameserver_results, record_target_result,
    record_target_results, refs_from_json, refs_to_json,
)
from .sweeps import (  # noqa: F401
    RECOVERY_ORDER, claim_recovery, end_periodic_run, lagging_zones, max_propagation_seconds, parse_since,
    purge_deleted, start_periodic_run, start_target_sync, sync_batches, target_sync_plan,
)
from .catalog import (  # noqa: F401
    bump_catalog,
)
