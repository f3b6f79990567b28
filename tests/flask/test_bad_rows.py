"""Stored subscriber rows written without validation: each bad one is skipped with a logged
reason, and the good ones still receive the event."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import flask
import pytest
from sqlalchemy import insert

from thorn_core import Event
from thorn_core.receiver import WebhookReceiver
from thorn_flask import get_state

from .app import Subscription, db, store_subscription

#: Column values that no API would store, and the reason each row is skipped for. (A
#: malformed pattern is never a candidate of the indexed lookup, so such a row is found only
#: by uuid: see ``test_lookup_by_uuid_of_a_bad_row``.)
BAD_ROWS = {
    "unknown digest": ({"hmac_digest": "md4"}, "hmac_digest 'md4' is not supported"),
    "malformed URL": ({"url": "http://exa mple.com/hook"}, "contains the character ' '"),
    "undecodable secret": ({"hmac_secret": "whsec_%%%not-base64"}, "must continue with base64"),
    "empty secret": ({"hmac_secret": ""}, "hmac_secret must be a non-empty string"),
}


def insert_raw(app: flask.Flask, **values: object) -> None:
    """Insert a subscription row with a plain INSERT (no model, no validation)."""
    with app.app_context():
        db.session.execute(insert(Subscription).values(**values))
        db.session.commit()


class TestBadStoredRows:
    """``send()`` goes on for the good subscribers whatever the other rows hold."""

    def test_bad_rows_are_skipped_with_their_reason(
        self,
        make_app: Callable[..., flask.Flask],
        receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Every bad row is named in a warning; the good subscriber receives the event."""
        app = make_app()
        uuids = {}
        for name, (fields, _reason) in BAD_ROWS.items():
            uuids[name] = key = uuid.uuid4()
            values = {
                "event": "order.*",
                "url": receiver.url("/bad"),
                "uuid": key,
                "hmac_secret": "a-good-secret",
                **fields,
            }
            insert_raw(app, **values)
        good = store_subscription(app, receiver.url("/good"), "order.*")
        with app.app_context(), caplog.at_level(logging.WARNING, logger="thorn_core.subscribers"):
            result = Event("order.paid").send({"id": 1})
        assert [d.subscriber.uuid for d in result.deliveries] == [good.uuid]
        assert [r.path for r in receiver.received] == ["/good"]
        for name, (_fields, reason) in BAD_ROWS.items():
            (line,) = [r.getMessage() for r in caplog.records if str(uuids[name]) in r.getMessage()]
            assert line.startswith(f"Skipping stored subscriber {uuids[name]}: ")
            assert reason in line
        assert "%%%not-base64" not in caplog.text

    def test_refused_url_fails_its_own_delivery(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """A row whose URL the validators refuse is a failed delivery on record, not a skip."""
        app = make_app()
        refused = store_subscription(app, "http://10.1.2.3/hook", "order.*")
        store_subscription(app, receiver.url("/good"), "order.*")
        with app.app_context():
            result = Event("order.paid").send({"id": 2})
        assert sorted(d.ok for d in result.deliveries) == [False, True]
        log = get_state(app).delivery_log
        assert log is not None
        (attempt,) = log.failed(str(refused.uuid))
        assert "10.1.2.3" in (attempt.error or "")
        assert [r.path for r in receiver.received] == ["/good"]

    def test_lookup_by_uuid_of_a_bad_row(
        self, make_app: Callable[..., flask.Flask], caplog: pytest.LogCaptureFixture
    ) -> None:
        """Finding a bad row by uuid (redelivery, the CLI) answers None and logs why."""
        app = make_app()
        row = store_subscription(app, "https://example.com/hook", "order.*.paid")
        assert get_state(app).core.find_subscriber(str(row.uuid)) is None
        assert (
            f"Skipping stored subscriber {row.uuid}: pattern 'order.*.paid' has a wildcard in "
            "a middle segment" in caplog.text
        )
