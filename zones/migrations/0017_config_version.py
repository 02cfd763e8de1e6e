"""A version number for what the API's writes and the pipeline's stages keep per process
(zones.cached): TLDs, blacklists, pools with their NS records, targets, nameservers, also-notifies
and TSIG keys, quotas. Triggers give it a new number from a sequence in the transaction of any
change to those tables, so a copy is current exactly when its number is. A pool's catalog_serial
(bumped by the pipeline, read by nobody that keeps a copy) does not change it.

Also an index for the zone-name check (zones.services.writes._check_zone_name_free): the live zones
below a name are those whose reversed name starts with the reversed ".name", a prefix an index
answers, where `name LIKE '%.name'` reads every zone. Other databases get neither (no version:
nothing is kept; the check reads without the index)."""
from django.db import migrations

TABLES = ("zones_tld", "zones_blacklist", "zones_poolnsrecord", "zones_quota", "zones_pooltarget",
          "zones_poolnameserver", "zones_poolalsonotify", "zones_tsigkey")

FORWARD = [
    "CREATE SEQUENCE dnsctl_config_version_seq",
    "CREATE TABLE dnsctl_config_version (id smallint PRIMARY KEY CHECK (id = 1), n bigint NOT NULL)",
    "INSERT INTO dnsctl_config_version VALUES (1, nextval('dnsctl_config_version_seq'))",
    """CREATE FUNCTION dnsctl_config_changed() RETURNS trigger AS $$
BEGIN
    UPDATE dnsctl_config_version SET n = nextval('dnsctl_config_version_seq');
    RETURN NULL;
END $$ LANGUAGE plpgsql""",
    *[f"CREATE TRIGGER dnsctl_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
      "FOR EACH STATEMENT EXECUTE FUNCTION dnsctl_config_changed()"
      for table in TABLES],
    # Every column but catalog_serial: QuerySet.update(catalog_serial=...) does not count.
    "CREATE TRIGGER dnsctl_config_changed AFTER INSERT OR DELETE OR TRUNCATE "
    "OR UPDATE OF name, description, threshold_percentage, notify_source, tsig_key_id, catalog_zone, "
    "allowed_projects, updated_at ON zones_pool "
    "FOR EACH STATEMENT EXECUTE FUNCTION dnsctl_config_changed()",
    "CREATE INDEX zone_live_reversed_name ON zones_zone (reverse(name) text_pattern_ops) WHERE deleted_at IS NULL",
]

BACKWARD = [
    "DROP INDEX IF EXISTS zone_live_reversed_name",
    *[f"DROP TRIGGER IF EXISTS dnsctl_config_changed ON {table}"
      for table in (*TABLES, "zones_pool")],
    "DROP FUNCTION IF EXISTS dnsctl_config_changed()",
    "DROP TABLE IF EXISTS dnsctl_config_version",
    "DROP SEQUENCE IF EXISTS dnsctl_config_version_seq",
]


def run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)
    return apply


class Migration(migrations.Migration):

    dependencies = [
        ('zones', '0016_zone_tasks_purge_index'),
    ]

    operations = [migrations.RunPython(run(FORWARD), run(BACKWARD))]
