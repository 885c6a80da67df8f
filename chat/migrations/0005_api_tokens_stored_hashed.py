# API tokens are stored as a SHA-256 hash (and their last characters, to recognise them); the
# tokens people already use keep working.

import hashlib

from django.db import migrations, models


def hash_existing(apps, schema_editor):
    ApiToken = apps.get_model("chat", "ApiToken")
    for token in ApiToken.objects.all():
        token.key_hash = hashlib.sha256(token.key.encode()).hexdigest()
        token.hint = token.key[-4:]
        token.save(update_fields=["key_hash", "hint"])


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0004_session_kind"),
    ]

    operations = [
        migrations.AddField(model_name="apitoken", name="key_hash", field=models.CharField(max_length=64, null=True)),
        migrations.AddField(model_name="apitoken", name="hint", field=models.CharField(blank=True, max_length=8)),
        migrations.RunPython(hash_existing, migrations.RunPython.noop),
        migrations.RemoveField(model_name="apitoken", name="key"),
        migrations.AlterField(model_name="apitoken", name="key_hash", field=models.CharField(max_length=64, unique=True)),
    ]
