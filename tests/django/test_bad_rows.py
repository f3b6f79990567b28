"""Stored subscriber rows written without validation: each bad one is skipped with a logged
reason, and the good ones still receive the event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import Event
from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.models import DeliveryAttempt

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback")]

#: Rows that ``Subscriber.objects.create`` stores without ``full_clean()``, and the reason
#: each one is skipped for. (A malformed pattern is never a candidate of the indexed lookup,
#: so such a row is found only by uuid: see ``test_lookup_by_uuid_of_a_bad_row``.)
BAD_ROWS = {
    "unknown digest": ({"hmac_digest": "md4"}, "hmac_digest 'md4' is not supported"),
    "malformed URL": ({"url": "http://exa mple.com/hook"}, "contains the character ' '"),
    "undecodable secret": ({"hmac_secret": "whsec_%%%not-base64"}, "must continue with base64"),
    "empty secret": ({"hmac_secret": ""}, "hmac_secret must be a non-empty string"),
}


class TestBadStoredRows:
    """``send()`` goes on for the good subscribers whatever the other rows hold."""

    def test_bad_rows_are_skipped_with_their_reason(
        self,
        subscribe: Callable[..., Any],
        receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Every bad row is named in a warning; the good subscriber receives the event."""
        bad = {
            name: subscribe(**{"event": "order.*", "url": receiver.url("/bad"), **fields})
            for name, (fields, _reason) in BAD_ROWS.items()
        }
        good = subscribe("order.*", receiver.url("/good"))
        with caplog.at_level(logging.WARNING, logger="thorn_core.subscribers"):
            result = Event("order.paid").send({"id": 1})
        assert [d.subscriber.uuid for d in result.deliveries] == [good.uuid]
        (webhook,) = receiver.received
        assert webhook.path == "/good"
        for name, (_fields, reason) in BAD_ROWS.items():
            (line,) = [
                r.getMessage() for r in caplog.records if str(bad[name].uuid) in r.getMessage()
            ]
            assert line.startswith(f"Skipping stored subscriber {bad[name].uuid}: ")
            assert reason in line
        assert "%%%not-base64" not in caplog.text

    def test_refused_url_fails_its_own_delivery(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A row whose URL the validators refuse is a failed delivery on record, not a skip."""
        refused = subscribe("order.*", "http://10.1.2.3/hook")
        subscribe("order.*", receiver.url("/good"))
        result = Event("order.paid").send({"id": 2})
        assert sorted(d.ok for d in result.deliveries) == [False, True]
        (attempt,) = DeliveryAttempt.objects.filter(subscriber_uuid=refused.uuid)
        assert "10.1.2.3" in attempt.error
        assert [r.path for r in receiver.received] == ["/good"]

    def test_lookup_by_uuid_of_a_bad_row(
        self, subscribe: Callable[..., Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        """Finding a bad row by uuid (redelivery, the admin) answers None and logs why."""
        row = subscribe("order.*.paid", "https://example.com/hook")
        assert get_app().find_subscriber(str(row.uuid)) is None
        assert (
            f"Skipping stored subscriber {row.uuid}: pattern 'order.*.paid' has a wildcard in "
            "a middle segment" in caplog.text
        )
