# A chat's model (CLAUDE_MODELS) and the files attached to a message.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0007_live_sessions_permissions_and_turn_costs'),
    ]

    operations = [
        migrations.AddField(
            model_name='session',
            name='model',
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name='turn',
            name='attachments',
            field=models.JSONField(blank=True, default=list),
        ),
    ]
