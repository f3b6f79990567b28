# ruff: noqa: RUF012 -- the shape makemigrations writes
"""Thorn schema step: issue 18, event catalog: payload filter and version pin."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("thorn_django", "0004_secret_rotation"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriber",
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
            model_name="subscriber",
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
