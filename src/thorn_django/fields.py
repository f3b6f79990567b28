"""A model field holding a subscriber secret, encrypted with ``THORN_SECRET_KEYS`` when set."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from thorn_core.encryption import decrypt_stored, encrypt_stored, normalize_keys

__all__ = ["EncryptedSecretField", "secret_keys"]


def secret_keys() -> tuple[str, ...]:
    """The project's ``THORN_SECRET_KEYS`` (``override_settings`` included), newest first."""
    return normalize_keys(getattr(settings, "THORN_SECRET_KEYS", None))


class EncryptedSecretField(models.TextField):  # type: ignore[type-arg]
    """Text in Python, ``fernet:<token>`` in the column once keys are set.

    Rows written in clear (before the keys, or by Thorn 1.x) are read as they are and
    encrypted on their next save; ``thorn_subscribers reencrypt`` rewrites them all. A value
    no key decrypts is kept as it is stored (saving the row writes it back unchanged) and
    the subscriber converter reports it with the subscriber's id.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        """Decrypt what the database holds (cached per process)."""
        return decrypt_stored(value, secret_keys())

    def get_prep_value(self, value: Any) -> Any:
        """Encrypt with the newest key (already encrypted values are stored as they are)."""
        return encrypt_stored(super().get_prep_value(value), secret_keys())
