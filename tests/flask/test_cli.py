"""``flask thorn``: list, add, remove and ping subscribers through Flask's CliRunner."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import flask
import pytest
import sqlalchemy
from sqlalchemy import ForeignKey
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from thorn_core.receiver import WebhookReceiver
from thorn_flask import Base, DeliveryAttempt, SubscriberMixin, Thorn, get_state

from ..core.test_cli import assert_user_error
from .app import LOOPBACK, Subscription, db


def add(app: flask.Flask, *args: str) -> str:
    """Run ``flask thorn add`` and return the new subscriber's id."""
    result = app.test_cli_runner().invoke(args=["thorn", "add", *args])
    assert result.exit_code == 0, result.output
    found = re.search(r"Added subscriber (\S+):", result.output)
    assert found is not None
    return found.group(1)


class TestCommands:
    """The commands manage stored subscribers and send test events."""

    def test_add_list_remove(self, app: flask.Flask) -> None:
        """A subscriber added from the command line is listed, then removed."""
        runner = app.test_cli_runner()
        key = add(app, "http://127.0.0.1:8000/hook", "--event", "user.*", "--user", "5")
        listed = runner.invoke(args=["thorn", "list"]).output
        assert f"{key}  user.* http://127.0.0.1:8000/hook user=5" in listed.replace(
            "  http", " http"
        )
        assert (
            key
            in runner.invoke(
                args=["thorn", "list", "--event", "user.created", "--user", "5"]
            ).output
        )
        removed = runner.invoke(args=["thorn", "remove", key])
        assert removed.exit_code == 0
        with app.app_context():
            assert db.session.query(Subscription).count() == 0

    def test_add_refuses_invalid_input(self, app: flask.Flask) -> None:
        """The same per-field messages as the API; nothing is stored."""
        result = app.test_cli_runner().invoke(
            args=["thorn", "add", "http://10.0.0.1/", "--event", "a.*.b"]
        )
        assert result.exit_code != 0
        assert "event: pattern 'a.*.b' has a wildcard in a middle segment" in result.output
        assert "url:" in result.output

    def test_ping_delivers_a_signed_test_event(
        self, app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """``flask thorn ping`` delivers thorn.ping to that subscriber only."""
        key = add(app, receiver.url("/hook"), "--event", "user.*")
        result = app.test_cli_runner().invoke(args=["thorn", "ping", key])
        assert result.exit_code == 0, result.output
        assert "HTTP 200" in result.output
        (webhook,) = receiver.received
        assert webhook.event == "thorn.ping"
        with app.app_context():
            secret = db.session.query(Subscription).one().hmac_secret
        assert webhook.standard_webhook_valid(secret)

    def test_unknown_subscriber(self, app: flask.Flask) -> None:
        """Removing an unknown id fails with a message."""
        result = app.test_cli_runner().invoke(
            args=["thorn", "remove", "00000000-0000-0000-0000-000000000000"]
        )
        assert result.exit_code == 1
        assert "No subscriber" in result.output


class OwnersBase(DeclarativeBase):
    """A schema whose subscriptions belong to accounts (``user_id`` is a foreign key)."""


class Account(OwnersBase):
    """A user of the application."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)


class OwnedSubscription(SubscriberMixin, OwnersBase):
    """Subscriptions owned by accounts: ``user_id`` redeclared as a foreign key."""

    user_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)


@pytest.fixture
def owners_app(tmp_path: Path) -> Iterator[flask.Flask]:
    """A Flask app on plain SQLAlchemy whose subscriptions are owned by accounts 1 and 2."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'owners.db'}")
    OwnersBase.metadata.create_all(engine)
    Base.metadata.create_all(engine, tables=[DeliveryAttempt.__table__])
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        session.add_all([Account(id=1), Account(id=2)])
    app = flask.Flask("owners")
    app.config["THORN_RECIPIENT_VALIDATORS"] = LOOPBACK
    Thorn(app, session_factory=sessions, model=OwnedSubscription, current_user=lambda: None)
    yield app
    get_state(app).core.close()
    engine.dispose()


class TestOwner:
    """``add --user`` gives the subscription an owner, by the key of the model's ``user_id``."""

    def test_owner_by_id(self, owners_app: flask.Flask) -> None:
        """An existing account's id becomes the owner; ``list --user`` finds the row."""
        key = add(owners_app, "http://127.0.0.1:8000/hook", "--event", "a.b", "--user", "2")

        listed = owners_app.test_cli_runner().invoke(args=["thorn", "list", "--user", "2"])

        assert listed.exit_code == 0, listed.output
        assert f"{key}  a.b  http://127.0.0.1:8000/hook user=2" in listed.output
        with get_state(owners_app).session() as session:
            assert session.scalars(sqlalchemy.select(OwnedSubscription.user_id)).one() == 2

    @pytest.mark.parametrize(
        ("user", "words"),
        [
            ("3", "no user '3' (account.id)"),
            ("ada", "'ada' is not a user id"),
            ("9" * 30, "is not a user id: out of range"),
        ],
        ids=["unknown", "not-an-int", "too-large"],
    )
    def test_unknown_owner(self, owners_app: flask.Flask, user: str, words: str) -> None:
        """An id that names no account, or is not an id at all, is refused; nothing is stored."""
        result = owners_app.test_cli_runner().invoke(
            args=["thorn", "add", "http://127.0.0.1:8000/", "--event", "a.b", "--user", user]
        )

        assert_user_error(result, 2, "--user", words)
        listed = owners_app.test_cli_runner().invoke(args=["thorn", "list"])
        assert listed.output == ""


class TestMaskedPasswords:
    """A password in a subscriber's URL is never printed: ``add``, ``list`` and ``ping``."""

    def test_add_list_ping(self, app: flask.Flask, receiver: WebhookReceiver) -> None:
        """Every message shows the URL with ``***`` for the password; the delivery has it."""
        url = receiver.url("/hook").replace("http://", "http://ada:s3cret@")
        masked = url.replace("s3cret", "***")
        runner = app.test_cli_runner()

        added = runner.invoke(args=["thorn", "add", url, "--event", "user.*"])
        key = added.output.split("Added subscriber ", 1)[1].split(":", 1)[0]
        listed = runner.invoke(args=["thorn", "list"])
        pinged = runner.invoke(args=["thorn", "ping", key])

        assert f"-> {masked}" in added.output
        assert f"{key}  user.*  {masked}" in listed.output
        assert f"Delivered thorn.ping to {masked}: HTTP 200" in pinged.output
        assert "s3cret" not in added.output + listed.output + pinged.output
        assert receiver.wait_for(1)[0].headers["authorization"].startswith("Basic ")

    def test_redeliver(
        self, app: flask.Flask, make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A redelivery that fails again names the URL with its password masked."""
        down = make_receiver(lambda _request: (503, b"down"))
        url = down.url("/hook").replace("http://", "http://ada:s3cret@")
        key = add(app, url, "--event", "order.*")
        with app.app_context():
            get_state(app).core.event("order.paid").send({"id": 1})

        result = app.test_cli_runner().invoke(args=["thorn", "redeliver", "--subscriber", key])

        assert result.exit_code == 1, result.output
        assert f"failed: {url.replace('s3cret', '***')} answered 503" in result.output
        assert "s3cret" not in result.output
