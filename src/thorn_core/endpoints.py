"""Endpoint health as users see it: the APIs' read-only ``health`` field and the
``thorn endpoints`` report (the core command and the adapters' ``endpoints`` commands).

Every function here reads the app's health store once for all the endpoints it shows
(:meth:`~thorn_core.health.HealthStore.statuses`), never once per subscription, so a page
of a hundred subscriptions costs one round trip to Redis.
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from .health import EndpointStatus, endpoint_key, url_origin
from .subscriptions import MAX_ENDPOINT_LENGTH

if TYPE_CHECKING:
    from .app import Thorn

__all__ = [
    "EndpointReport",
    "endpoint_reports",
    "health_by_key",
    "health_field",
    "render_endpoints",
    "subscription_health",
    "target_key",
]

#: How the reports are ordered: open circuits first, then half-open ones, then the others.
_STATE_ORDER = {"open": 0, "half_open": 1, "closed": 2}
_COLUMNS = ("ENDPOINT", "STATE", "FAILURE RATE", "REQUESTS", "NEXT PROBE", "SUBSCRIPTIONS")


@attrs.frozen
class EndpointReport:
    """One endpoint's health and how many of the listed subscriptions deliver to it."""

    status: EndpointStatus
    subscriptions: int = 0

    @property
    def key(self) -> str:
        """The endpoint key (:func:`~thorn_core.health.endpoint_key`)."""
        return self.status.key

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``thorn endpoints --json``: every status field, times in ISO 8601."""
        status = self.status
        return {
            "endpoint": status.key,
            "state": status.state,
            "failure_rate": status.failure_rate,
            "requests": status.requests,
            "failures": status.failures,
            "opened_at": _iso(status.opened_at),
            "next_probe_at": _iso(status.next_probe_at),
            "failure_streak": status.failure_streak,
            "slow_until": _iso(status.slow_until),
            "subscriptions": self.subscriptions,
        }


def _iso(epoch: float | None) -> str | None:
    """``epoch`` seconds as an ISO 8601 UTC time, or None."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def health_by_key(app: Thorn, subscriptions: Iterable[Any]) -> dict[str, EndpointStatus]:
    """The status of the endpoint of each of ``subscriptions`` (core subscribers or model
    rows with ``url`` and ``endpoint``), by endpoint key, read in one call to the store."""
    keys = {endpoint_key(subscription) for subscription in subscriptions}
    return app.health.statuses(sorted(keys)) if keys else {}


def health_field(status: EndpointStatus) -> dict[str, Any]:
    """The read-only ``health`` field of a subscription in the APIs: the circuit ``state``,
    the ``failure_rate`` over the window and when the next probe goes out (``next_probe_at``,
    ISO 8601, null unless the circuit is open)."""
    return {
        "state": status.state,
        "failure_rate": status.failure_rate,
        "next_probe_at": _iso(status.next_probe_at),
    }


def subscription_health(
    app: Thorn, subscription: Any, known: dict[str, EndpointStatus] | None = None
) -> dict[str, Any]:
    """:func:`health_field` of one subscription: from ``known`` (a :func:`health_by_key`
    answer for a whole page) when it holds the endpoint, else read from the store."""
    key = endpoint_key(subscription)
    status = (known or {}).get(key)
    if status is None:
        status = app.health.status(key)
    return health_field(status)


def target_key(target: str) -> str:
    """The endpoint key a user names on a command line: a URL's origin, or a key as given.

    Raises:
        ValueError: ``target`` is neither a URL with a host nor an endpoint name (no spaces,
            at most ``MAX_ENDPOINT_LENGTH`` characters).
    """
    if "://" in target:
        parts = urlsplit(target)
        if not parts.scheme or not parts.hostname:
            raise ValueError(f"{target!r} is not a URL with a host")
        return url_origin(target)
    if not target or any(c.isspace() for c in target) or len(target) > MAX_ENDPOINT_LENGTH:
        raise ValueError(
            f"{target[:60]!r} is neither a URL nor an endpoint name (a name has no spaces "
            f"and at most {MAX_ENDPOINT_LENGTH} characters)"
        )
    return target


def endpoint_reports(
    app: Thorn, keys: Iterable[str], *, only: Iterable[str] | None = None
) -> list[EndpointReport]:
    """A report per distinct endpoint of ``keys`` (one key per subscription, so each report
    counts its subscriptions), or per endpoint of ``only`` when given (those without a
    subscription count 0); open circuits first, read in one call to the store."""
    counts = Counter(keys)
    shown = sorted(counts) if only is None else sorted(set(only))
    statuses = app.health.statuses(shown) if shown else {}
    reports = [EndpointReport(statuses[key], counts[key]) for key in shown]
    return sorted(reports, key=lambda r: (_STATE_ORDER.get(r.status.state, 3), r.key))


def _in(seconds: float) -> str:
    """A wait as the table shows it: ``now``, ``in 42s``, ``in 5 min``."""
    if seconds <= 0:
        return "now"
    if seconds < 120:
        return f"in {seconds:.0f}s"
    return f"in {seconds / 60:.0f} min"


def render_endpoints(
    reports: Iterable[EndpointReport], *, as_json: bool = False, now: float
) -> str:
    """``thorn endpoints``' output: an aligned table (``now`` is the epoch time the next
    probes are counted from), or with ``as_json`` a JSON array of :meth:`EndpointReport.
    as_dict`."""
    reports = list(reports)
    if as_json:
        return json.dumps([report.as_dict() for report in reports], indent=2)
    if not reports:
        return "No endpoints."
    rows = [_COLUMNS]
    for report in reports:
        status = report.status
        probe = "-" if status.next_probe_at is None else _in(status.next_probe_at - now)
        rows.append(
            (
                report.key,
                status.state,
                f"{status.failure_rate:.0%}",
                str(status.requests),
                probe,
                str(report.subscriptions),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
