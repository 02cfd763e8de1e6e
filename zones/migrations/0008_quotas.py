from django.db import migrations, models


def count_user_data(apps, schema_editor):
    """Fill the new counters from the recordsets already there (SOA and apex NS excluded)."""
    Zone, RecordSet = apps.get_model("zones", "Zone"), apps.get_model("zones", "RecordSet")
    counts = {}
    for zone_id, records in RecordSet.objects.filter(managed=False).values_list("zone_id", "records").iterator():
        recordsets, total = counts.get(zone_id, (0, 0))
        counts[zone_id] = (recordsets + 1, total + len(records or []))
    for zone_id, (recordsets, total) in counts.items():
        Zone.objects.filter(id=zone_id).update(recordset_count=recordsets, record_count=total)


class Migration(migrations.Migration):

    dependencies = [
        ("zones", "0007_membership_role"),
    ]

    operations = [
        migrations.AddField(
            model_name="zone",
            name="record_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="zone",
            name="recordset_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.CreateModel(
            name="Quota",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("project_id", models.CharField(db_index=True, max_length=255)),
                ("resource", models.CharField(max_length=32)),
                ("hard_limit", models.BigIntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["project_id", "resource"],
                "constraints": [models.UniqueConstraint(fields=("project_id", "resource"), name="uniq_quota")],
            },
        ),
        migrations.RunPython(count_user_data, migrations.RunPython.noop),
    ]
