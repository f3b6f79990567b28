# ruff: noqa: RUF012 -- the shape makemigrations writes
"""Thorn schema step: issue 17, secrets: rotation list and encryption at rest."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("thorn_django", "0003_endpoint_limits"),
    ]

    operations = []
