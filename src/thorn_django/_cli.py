"""Helpers shared by the management commands, the API and the admin: times and outcomes."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.utils.dateparse import parse_date, parse_datetime

if TYPE_CHECKING:
    from thorn_core.delivery import Delivery

__all__ = ["outcome", "parse_since"]


def parse_since(value: str) -> datetime.datetime:
    """An ISO 8601 date or time, in UTC (taken as UTC when it has no offset).

    Raises:
        ValueError: ``value`` is neither.
    """
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(f"{value!r} is not an ISO 8601 date or time")
        parsed = datetime.datetime.combine(day, datetime.time())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def outcome(delivery: Delivery) -> str:
    """``delivered (HTTP 200)`` or ``failed (reason)``."""
    if delivery.ok:
        return f"delivered (HTTP {delivery.status_code})"
    return f"failed ({delivery.error or f'HTTP {delivery.status_code}'})"
