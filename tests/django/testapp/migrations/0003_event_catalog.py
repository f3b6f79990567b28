# ruff: noqa: RUF012 -- the shape makemigrations writes
"""The test app's custom subscriber follows thorn_django 0005: the payload filter and the
version pin."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0002_secret_rotation"),
    ]

    operations = [
        migrations.AddField(
            model_name="customsubscriber",
            name="filter",
            field=models.JSONField(
                blank=True,
                default=None,
                help_text=(
                    'Deliver only the sends whose payload satisfies it: {"amount": {"$gte": 100}}.'
                ),
                null=True,
                verbose_name="payload filter",
            ),
        ),
        migrations.AddField(
            model_name="customsubscriber",
            name="version",
            field=models.CharField(
                blank=True,
                default=None,
                help_text="Deliver only the sends of this version of the event type.",
                max_length=32,
                null=True,
                verbose_name="version pin",
            ),
        ),
    ]
