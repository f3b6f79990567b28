# ruff: noqa: RUF012 -- the shape makemigrations writes
"""The test app's custom subscriber follows thorn_django 0003: the endpoint-health limits
(``rate_limit``, ``max_in_flight``) and the ``endpoint`` key override."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0003_event_catalog"),
    ]

    operations = [
        migrations.AddField(
            model_name="customsubscriber",
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
            model_name="customsubscriber",
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
            model_name="customsubscriber",
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
