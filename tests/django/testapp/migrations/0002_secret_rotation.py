# ruff: noqa: RUF012 -- the shape makemigrations writes
"""The test app's custom subscriber follows thorn_django 0004: the rotation list, a wider
(encrypted) secret column."""

from django.db import migrations

import thorn_core.signing
import thorn_django.fields


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="customsubscriber",
            name="hmac_secret",
            field=thorn_django.fields.EncryptedSecretField(
                default=thorn_core.signing.generate_secret,
                editable=False,
                verbose_name="HMAC secret",
            ),
        ),
        migrations.AddField(
            model_name="customsubscriber",
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
    ]
