"""The pytest plugin's ``captured_events`` on a Flask app: the app keeps its SQLAlchemy
delivery log while events are captured, and after."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: A user's project: a Flask app with Thorn on SQLite, its app overriding ``thorn_app``.
CONFTEST = """
import flask
import pytest
from flask_sqlalchemy import SQLAlchemy
from thorn_core.testing import loopback_validators
from thorn_flask import Thorn, get_state
from thorn_flask.models import Base

db = SQLAlchemy()


@pytest.fixture(scope="session")
def web():
    app = flask.Flask("shop")
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///{database}",
        THORN_RECIPIENT_VALIDATORS=loopback_validators(),
    )
    db.init_app(app)
    Thorn(app, db=db)
    with app.app_context():
        Base.metadata.create_all(db.engine)
    return app


@pytest.fixture
def thorn_app(web):
    with web.app_context():
        yield get_state(web).core
"""

TESTS = """
from thorn_core.ping import ping
from thorn_flask import get_state
from thorn_flask.log import SQLAlchemyDeliveryLog
from thorn_flask.models import Subscriber


def test_ping_while_capturing(web, captured_events, webhook_receiver):
    state = get_state(web)
    with state.session() as session, session.begin():
        row = Subscriber(url=webhook_receiver.url(), event="*", hmac_secret=webhook_receiver.secret)
        session.add(row)
    assert ping(state.core, row.to_subscriber()).ok
    (attempt,) = state.core.delivery_log.for_subscriber(str(row.uuid))
    assert attempt.event == "thorn.ping"
    captured_events.assert_nothing_sent()


def test_log_kept_after_capturing(web):
    log = get_state(web).core.delivery_log
    assert isinstance(log, SQLAlchemyDeliveryLog)
    assert log is get_state(web).delivery_log
    with get_state(web).session() as session:
        (row,) = session.query(Subscriber).all()
    assert [a.event for a in log.for_subscriber(str(row.uuid))] == ["thorn.ping"]
"""


class TestCapturedEventsOnFlask:
    """Switching to the capture dispatcher leaves the Flask app's delivery log in place."""

    def test_log_is_the_database_one_during_and_after(
        self, pytester: pytest.Pytester, tmp_path: Path
    ) -> None:
        """A ping during ``captured_events`` lands in the table; the app keeps that log after."""
        pytester.makeini("[pytest]\nfilterwarnings = error\naddopts = -p no:cacheprovider\n")
        pytester.makeconftest(textwrap.dedent(CONFTEST).format(database=tmp_path / "shop.db"))
        pytester.makepyfile(test_shop=textwrap.dedent(TESTS))
        result = pytester.runpytest("-p", "no:django")
        result.assert_outcomes(passed=2)
