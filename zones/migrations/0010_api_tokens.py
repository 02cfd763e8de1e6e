"""API tokens stored as digests (zones.ApiToken), and the clear-text keys of
rest_framework.authtoken moved into them: each old key keeps working, and its clear row is deleted."""
import datetime
import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone
from knox.crypto import hash_token

OLD_TABLE = "authtoken_token"  # rest_framework.authtoken's, no longer installed: read with SQL if it is there


def digest_old_tokens(apps, schema_editor):
    """Old keys become tokens with the default lifetime from now on (API_TOKEN_TTL; 0 = forever)."""
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    table, key = schema_editor.quote_name(OLD_TABLE), schema_editor.quote_name("key")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {key}, user_id, created FROM {table}")
        rows = cursor.fetchall()
    ttl = getattr(settings, "API_TOKEN_TTL", 0)
    expiry = timezone.now() + datetime.timedelta(seconds=ttl) if ttl else None
    ApiToken = apps.get_model("zones", "ApiToken")
    for old_key, user_id, created in rows:
        if timezone.is_naive(created):  # SQLite's raw rows: UTC, as Django stores them
            created = timezone.make_aware(created, datetime.timezone.utc)
        token = ApiToken.objects.create(digest=hash_token(old_key), user_id=user_id, expiry=expiry,
                                        description="migrated from the clear-text token table")
        ApiToken.objects.filter(pk=token.pk).update(created=created)  # the key's age, not the migration's
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")


class Migration(migrations.Migration):

    dependencies = [
        ("zones", "0009_tenant_views"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("created", models.DateTimeField(auto_now_add=True)),
                ("expiry", models.DateTimeField(blank=True, null=True)),
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("digest", models.CharField(editable=False, max_length=128, unique=True)),
                ("description", models.CharField(blank=True, default="", max_length=255)),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                           related_name="auth_token_set", to=settings.AUTH_USER_MODEL)),
            ],
            options={"verbose_name": "API token", "ordering": ["created", "id"]},
        ),
        # Backwards the clear keys cannot come back: going back loses the tokens.
        migrations.RunPython(digest_old_tokens, migrations.RunPython.noop),
    ]
