# ruff: noqa: RUF012 -- the shape makemigrations writes
"""Thorn schema step: issue 15, endpoint health: rate_limit and max_in_flight."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("thorn_django", "0002_delivery_log_outbox"),
    ]

    operations = []
