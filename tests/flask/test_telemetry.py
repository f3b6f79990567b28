"""Telemetry on Flask: the outbox gauges read the SQLAlchemy outbox's backlog and its age."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import flask
import pytest
from sqlalchemy import update

from thorn_core import Event
from thorn_core.outbox import relay
from thorn_flask import OutboxEvent, get_state

from .app import Article, db

pytest.importorskip("opentelemetry.sdk", reason="the telemetry tests need opentelemetry-sdk")

from .._otel import OTel


def gauge(otel: OTel, name: str) -> float:
    """The value of a gauge without attributes."""
    ((_, point),) = otel.points(name)
    return float(point.value)


class TestOutboxGauges:
    """``thorn.outbox.backlog`` and ``thorn.outbox.oldest_age`` follow the outbox table."""

    def test_backlog_and_age_of_the_oldest(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any]
    ) -> None:
        """Two stored events, the oldest two minutes old; after the relay, none and 0 s."""
        otel = OTel()
        app = make_app(
            {**database, "THORN_OUTBOX": True, "THORN_METER_PROVIDER": otel.meter_provider}
        )
        core = get_state(app).core
        try:
            with app.app_context():
                assert relay(core) == 0  # a relay process reports the backlog from its start
                assert gauge(otel, "thorn.outbox.backlog") == 0
                assert gauge(otel, "thorn.outbox.oldest_age") == 0
                db.session.add(Article(title="draft"))
                db.session.flush()
                Event("order.paid").send({"n": 1})
                db.session.commit()
                two_minutes_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
                    seconds=120
                )
                db.session.execute(update(OutboxEvent).values(created_at=two_minutes_ago))
                db.session.commit()

                assert gauge(otel, "thorn.outbox.backlog") == 2
                assert 119 <= gauge(otel, "thorn.outbox.oldest_age") < 180

                assert relay(core) == 2
                assert gauge(otel, "thorn.outbox.backlog") == 0
                assert gauge(otel, "thorn.outbox.oldest_age") == 0
        finally:
            otel.shutdown()
