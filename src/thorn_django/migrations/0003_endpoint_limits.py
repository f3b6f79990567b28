# ruff: noqa: RUF012 -- the shape makemigrations writes
"""Thorn schema step: issue 15, endpoint health: rate_limit and max_in_flight."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("thorn_django", "0002_delivery_log_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="rate_limit",
            field=models.FloatField(
                blank=True,
                help_text="Deliveries per second to this endpoint at most; "
                "empty: THORN_RATE_LIMIT.",
                null=True,
                verbose_name="rate limit",
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="max_in_flight",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Deliveries to this endpoint in progress at once at most; "
                "empty: THORN_MAX_IN_FLIGHT.",
                null=True,
                verbose_name="max in flight",
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="endpoint",
            field=models.CharField(
                blank=True,
                help_text="The endpoint whose health (circuit, limits) this subscription "
                "shares; empty: the URL's scheme, host and port.",
                max_length=255,
                null=True,
                verbose_name="endpoint",
            ),
        ),
    ]
