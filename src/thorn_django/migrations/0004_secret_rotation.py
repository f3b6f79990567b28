# ruff: noqa: RUF012 -- the shape makemigrations writes
"""Thorn schema step: issue 17, secrets: rotation list and encryption at rest."""

from typing import Any

from django.db import migrations

import thorn_core.signing
import thorn_django.fields


def encrypt_existing(apps: Any, schema_editor: Any) -> None:
    """Rewrite each secret through the field: encrypted when THORN_SECRET_KEYS is set, else
    unchanged (every existing secret is kept; nothing is generated)."""
    model = apps.get_model("thorn_django", "Subscriber")
    for row in model._default_manager.using(schema_editor.connection.alias).iterator():
        model._default_manager.using(schema_editor.connection.alias).filter(pk=row.pk).update(
            hmac_secret=row.hmac_secret
        )


def decrypt_existing(apps: Any, schema_editor: Any) -> None:
    """Going back: secrets in clear again, so they fit the former column (needs the keys)."""
    from thorn_core.encryption import plain_secret

    model = apps.get_model("thorn_django", "Subscriber")
    manager = model._default_manager.using(schema_editor.connection.alias)
    for row in manager.iterator():
        secret = plain_secret(row.hmac_secret, row.uuid)
        # Raw SQL: the field of this state would encrypt again. Identifiers are quoted by the
        # schema editor and the values are parameters.
        table = schema_editor.quote_name(model._meta.db_table)
        pk = schema_editor.quote_name(model._meta.pk.column)
        sql = f"UPDATE {table} SET hmac_secret = %s WHERE {pk} = %s"  # noqa: S608
        schema_editor.execute(sql, [secret, row.pk])


class Migration(migrations.Migration):
    dependencies = [
        ("thorn_django", "0003_endpoint_limits"),
    ]

    operations = [
        migrations.AlterField(
            model_name="subscriber",
            name="hmac_secret",
            field=thorn_django.fields.EncryptedSecretField(
                default=thorn_core.signing.generate_secret,
                editable=False,
                verbose_name="HMAC secret",
            ),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="previous_secrets",
            field=thorn_django.fields.EncryptedSecretField(
                blank=True,
                default="",
                editable=False,
                help_text=(
                    "Older secrets that still sign until they expire (JSON), after a rotation."
                ),
                verbose_name="previous secrets",
            ),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
