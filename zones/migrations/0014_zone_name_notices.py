"""PostgreSQL tells listeners (MiniDNS) on commit which zone or catalog names changed, so MiniDNS can keep
its answers to "which zone, at which serial" without a query per DNS query (workers.minidns.DatabaseZoneSource).
Other databases get nothing: MiniDNS then reads per query."""
from django.db import migrations

CHANNEL = "dnsctl_zone_names"

FORWARD = f"""
CREATE OR REPLACE FUNCTION dnsctl_zone_name_notice() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.{{column}} IS NOT NULL THEN
        PERFORM pg_notify('{CHANNEL}', OLD.{{column}});
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.{{column}} IS NOT NULL THEN
        PERFORM pg_notify('{CHANNEL}', NEW.{{column}});
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""

TRIGGERS = {
    # what MiniDNS's find reads: a zone's name, serial, action (DELETE hides it) and deleted_at
    "zones_zone": ("name", ["name", "serial", "action", "deleted_at"]),
    "zones_pool": ("catalog_zone", ["catalog_zone", "catalog_serial"]),
}


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, (column, watched) in TRIGGERS.items():
        function = f"dnsctl_{table}_name_notice"
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in watched)
        schema_editor.execute(FORWARD.replace("dnsctl_zone_name_notice", function).replace("{column}", column))
        schema_editor.execute(f"CREATE TRIGGER {function}_rows AFTER INSERT OR DELETE ON {table} "
                              f"FOR EACH ROW EXECUTE FUNCTION {function}()")
        schema_editor.execute(f"CREATE TRIGGER {function}_update AFTER UPDATE ON {table} "
                              f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION {function}()")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TRIGGERS:
        function = f"dnsctl_{table}_name_notice"
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {function}_rows ON {table}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {function}_update ON {table}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()")


class Migration(migrations.Migration):

    dependencies = [
        ('zones', '0013_zone_tasks'),
    ]

    operations = [migrations.RunPython(forward, backward)]
