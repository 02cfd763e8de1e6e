"""MiniDNS's notices (0014) say what changed, not only which name: a zone's id, serial (null: no longer served)
and pool, or a catalog's pool and serial, as a JSON array. MiniDNS then updates its cached answers in place
instead of reading them again for every change, knows each zone's pool (the transfer ACL) without a query, and
drops its cached transfer keys when a pool's or a target's TSIG key changes ("keys"). Other databases get
nothing: MiniDNS then reads per query."""
import importlib

from django.db import migrations

CHANNEL = "dnsctl_zone_names"

ZONE = f"""
CREATE OR REPLACE FUNCTION dnsctl_zones_zone_name_notice() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.name IS DISTINCT FROM NEW.name) THEN
        PERFORM pg_notify('{CHANNEL}', json_build_array('zone', OLD.name, OLD.id, NULL, OLD.pool_id)::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('{CHANNEL}', json_build_array('zone', NEW.name, NEW.id,
            CASE WHEN NEW.deleted_at IS NULL AND NEW.action <> 'DELETE' THEN NEW.serial END, NEW.pool_id)::text);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""

CATALOG = f"""
CREATE OR REPLACE FUNCTION dnsctl_zones_pool_name_notice() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.catalog_zone IS NOT NULL
            AND (TG_OP = 'DELETE' OR OLD.catalog_zone IS DISTINCT FROM NEW.catalog_zone) THEN
        PERFORM pg_notify('{CHANNEL}', json_build_array('catalog', OLD.catalog_zone, OLD.id, NULL)::text);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.catalog_zone IS NOT NULL THEN
        PERFORM pg_notify('{CHANNEL}', json_build_array('catalog', NEW.catalog_zone, NEW.id, NEW.catalog_serial)::text);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""

KEYS = f"""
CREATE OR REPLACE FUNCTION dnsctl_transfer_keys_notice() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '["keys"]');
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""

# table -> the columns whose change makes a notice (besides inserts and deletes)
ZONE_WATCHED = ["name", "serial", "action", "deleted_at", "pool_id"]
KEYS_WATCHED = {"zones_pool": ["tsig_key_id"], "zones_pooltarget": ["tsig_key_id", "pool_id"], "zones_tsigkey": ["name"]}


def _changed(columns):
    return " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(ZONE)
    schema_editor.execute(CATALOG)
    schema_editor.execute("DROP TRIGGER IF EXISTS dnsctl_zones_zone_name_notice_update ON zones_zone")
    schema_editor.execute("CREATE TRIGGER dnsctl_zones_zone_name_notice_update AFTER UPDATE ON zones_zone "
                          f"FOR EACH ROW WHEN ({_changed(ZONE_WATCHED)}) EXECUTE FUNCTION dnsctl_zones_zone_name_notice()")
    schema_editor.execute(KEYS)
    for table, watched in KEYS_WATCHED.items():
        function = "EXECUTE FUNCTION dnsctl_transfer_keys_notice()"
        schema_editor.execute(f"CREATE TRIGGER dnsctl_{table}_keys_notice_update AFTER UPDATE ON {table} "
                              f"FOR EACH ROW WHEN ({_changed(watched)}) {function}")
        if table == "zones_pooltarget":
            schema_editor.execute(f"CREATE TRIGGER dnsctl_{table}_keys_notice_rows AFTER INSERT OR DELETE ON {table} "
                                  f"FOR EACH ROW {function}")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in KEYS_WATCHED:
        for suffix in ("update", "rows"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS dnsctl_{table}_keys_notice_{suffix} ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS dnsctl_transfer_keys_notice()")
    names = importlib.import_module("zones.migrations.0014_zone_name_notices")
    names.backward(apps, schema_editor)
    names.forward(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('zones', '0017_config_version'),
    ]

    operations = [migrations.RunPython(forward, backward)]
