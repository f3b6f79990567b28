# ruff: noqa: RUF012 -- the shape makemigrations writes
"""Thorn schema step: issue 18, event catalog: payload filter and version pin."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("thorn_django", "0004_secret_rotation"),
    ]

    operations = []
