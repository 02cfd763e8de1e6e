from django.db import migrations, models


def staff_were_admins(apps, schema_editor):
    """Before roles, every staff user was an API admin: keep them so."""
    Membership = apps.get_model("zones", "ProjectMembership")
    Membership.objects.filter(user__is_staff=True).update(role="admin")


class Migration(migrations.Migration):

    dependencies = [
        ("zones", "0006_coalesced_pushes"),
    ]

    operations = [
        migrations.AddField(
            model_name="projectmembership",
            name="role",
            field=models.CharField(choices=[("reader", "Reader"), ("member", "Member"), ("admin", "Admin")],
                                   default="member", max_length=16),
        ),
        migrations.RunPython(staff_were_admins, migrations.RunPython.noop),
    ]
