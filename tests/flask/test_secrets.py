"""Secret rotation and encryption at rest in Flask: the API route, ``flask thorn`` commands,
raw rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import flask
import pytest
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook

from thorn_core.receiver import WebhookReceiver
from thorn_flask import create_blueprint, get_state

from .app import Subscription, db

pytest.importorskip("cryptography")


def key() -> str:
    """A new Fernet key."""
    return Fernet.generate_key().decode()


def raw_secrets(app: flask.Flask, row: Any) -> tuple[str, str]:
    """``hmac_secret`` and ``previous_secrets`` exactly as the table holds them."""
    table = Subscription.__table__.name
    sql = f"SELECT hmac_secret, previous_secrets FROM {table} WHERE id = :id"  # noqa: S608
    with app.app_context():
        found = db.session.execute(db.text(sql), {"id": row.id}).one()
    return found[0], found[1]


def api(app: flask.Flask) -> Any:
    """A test client of ``app`` with the subscription API at ``/hooks``."""
    app.config["SERVER_NAME"] = None
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")
    return app.test_client()


def fresh(app: flask.Flask, row: Any) -> Subscription:
    """The row as stored now (decrypted by the column type)."""
    with app.app_context():
        found = db.session.get(Subscription, row.id)
        db.session.expunge(found)
        return found


class TestRotateThroughTheApi:
    """POST /hooks/<id>/rotate-secret/: the owner's new secret once; others get 404."""

    def test_owner_rotates_and_both_secrets_verify(
        self, app: flask.Flask, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """The answer holds the new secret; a ping verifies with the old and the new one."""
        client = api(app)
        row = subscribe(receiver.url(), event="thorn.ping", user_id="alice")

        answer = client.post(
            f"/hooks/{row.uuid}/rotate-secret/", json={"grace": 600}, headers={"X-User": "alice"}
        )

        assert answer.status_code == 200, answer.json
        new = answer.json["hmac_secret"]
        assert new != row.hmac_secret
        assert answer.json["previous_secret_expires_at"]
        assert fresh(app, row).hmac_secret == new
        client.post(f"/hooks/{row.uuid}/ping/", headers={"X-User": "alice"})
        (received,) = receiver.wait_for(1, 5.0)
        for secret in (row.hmac_secret, new):
            assert Webhook(secret).verify(received.body, dict(received.headers))
        detail = client.get(f"/hooks/{row.uuid}", headers={"X-User": "alice"}).get_data(True)
        assert new not in detail
        assert row.hmac_secret not in detail

    def test_another_users_subscription_is_not_found(
        self, app: flask.Flask, subscribe: Callable[..., Any]
    ) -> None:
        """Bob cannot rotate Alice's subscription: 404, and the secret stays."""
        client = api(app)
        row = subscribe("https://example.com/hook", user_id="alice")

        answer = client.post(f"/hooks/{row.uuid}/rotate-secret/", headers={"X-User": "bob"})

        assert answer.status_code == 404
        assert fresh(app, row).hmac_secret == row.hmac_secret

    @pytest.mark.parametrize(("grace", "message"), [(-1, "negative"), ("x", "seconds")])
    def test_bad_grace_is_400(
        self, app: flask.Flask, subscribe: Callable[..., Any], grace: Any, message: str
    ) -> None:
        """A negative or non-numeric grace: 400 naming it; nothing changes."""
        client = api(app)
        row = subscribe("https://example.com/hook", user_id="alice")

        answer = client.post(
            f"/hooks/{row.uuid}/rotate-secret/", json={"grace": grace}, headers={"X-User": "alice"}
        )

        assert answer.status_code == 400
        assert message in answer.json["grace"][0]
        assert fresh(app, row).hmac_secret == row.hmac_secret


class TestEncryptionAtRest:
    """THORN_SECRET_KEYS: the columns hold Fernet tokens; reencrypt moves to a new key."""

    def test_raw_row_holds_no_plaintext(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any]
    ) -> None:
        """Created and rotated through the API, the secrets are stored encrypted."""
        app = make_app({**database, "THORN_SECRET_KEYS": [key()]})
        client = api(app)
        created = client.post(
            "/hooks/",
            json={"event": "a.*", "url": "http://127.0.0.1:8000/hooks"},
            headers={"X-User": "alice"},
        ).json
        rotated = client.post(
            f"/hooks/{created['uuid']}/rotate-secret/", headers={"X-User": "alice"}
        ).json
        with app.app_context():
            row = db.session.scalars(db.select(Subscription)).one()

        stored, previous = raw_secrets(app, row)

        assert stored.startswith("fernet:")
        assert previous.startswith("fernet:")
        for secret in (created["hmac_secret"], rotated["hmac_secret"]):
            assert secret not in stored
            assert secret not in previous
        assert fresh(app, row).hmac_secret == rotated["hmac_secret"]

    def test_reencrypt_with_a_new_key(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any]
    ) -> None:
        """flask thorn reencrypt rewrites rows of the old key (and rows in clear)."""
        first, second = key(), key()
        app = make_app({**database, "THORN_SECRET_KEYS": [first]})
        with app.app_context():
            db.session.add(Subscription(url="https://example.com/a", event="*"))
            db.session.commit()
            row = db.session.scalars(db.select(Subscription)).one()
            secret = row.hmac_secret
        app.config["THORN_SECRET_KEYS"] = [second, first]
        restart_thorn(app)

        result = app.test_cli_runner().invoke(args=["thorn", "reencrypt"])

        assert result.exit_code == 0, result.output
        assert "Rewrote the secrets of 1 subscriber(s) with the newest key" in result.output
        token = raw_secrets(app, row)[0].removeprefix("fernet:")
        assert Fernet(second).decrypt(token.encode()).decode() == secret

    def test_no_matching_key_names_the_subscriber(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any], caplog: Any
    ) -> None:
        """Without the row's key: skipped naming its uuid only; reencrypt fails naming it."""
        app = make_app({**database, "THORN_SECRET_KEYS": [key()]})
        with app.app_context():
            db.session.add(Subscription(url="https://example.com/a", event="*"))
            db.session.commit()
            row = db.session.scalars(db.select(Subscription)).one()
            secret = row.hmac_secret
        app.config["THORN_SECRET_KEYS"] = [key()]
        restart_thorn(app)

        with app.app_context(), caplog.at_level(logging.WARNING):
            assert get_state(app).source.get(row.uuid) is None
        assert str(row.uuid) in caplog.text
        assert secret not in caplog.text
        result = app.test_cli_runner().invoke(args=["thorn", "reencrypt"])
        assert result.exit_code != 0
        assert str(row.uuid) in result.output
        assert secret not in result.output

    def test_start_up_warns_once_without_keys(
        self, make_app: Callable[..., flask.Flask], caplog: Any
    ) -> None:
        """Without THORN_SECRET_KEYS a warning is logged once per process, not per app."""
        from thorn_flask import secret_column

        secret_column._warned.clear()
        with caplog.at_level(logging.WARNING, logger="thorn_flask.secret_column"):
            make_app()
            make_app()
        assert caplog.text.count("THORN_SECRET_KEYS is not set") == 1


class TestCommands:
    """flask thorn rotate-secret."""

    def test_rotate_secret_prints_the_new_secret_once(
        self, app: flask.Flask, subscribe: Callable[..., Any]
    ) -> None:
        """The new secret is printed once; the old one signs until the given grace."""
        row = subscribe("https://example.com/a")

        result = app.test_cli_runner().invoke(
            args=["thorn", "rotate-secret", str(row.uuid), "--grace", "120"]
        )

        assert result.exit_code == 0, result.output
        new = fresh(app, row).hmac_secret
        assert result.output.count(new) == 1
        assert "keeps signing until" in result.output

    def test_negative_grace_is_a_usage_error(
        self, app: flask.Flask, subscribe: Callable[..., Any]
    ) -> None:
        """--grace -1 is refused before anything is written."""
        row = subscribe("https://example.com/a")
        result = app.test_cli_runner().invoke(
            args=["thorn", "rotate-secret", str(row.uuid), "--grace=-1"]
        )
        assert result.exit_code == 2
        assert "negative" in result.output
        assert fresh(app, row).hmac_secret == row.hmac_secret


def restart_thorn(app: flask.Flask) -> None:
    """Set Thorn up again on ``app`` after its THORN_SECRET_KEYS changed (as a restart does)."""
    from thorn_flask import Thorn

    Thorn(app, db=db, model=Subscription, current_user=lambda: flask.request.headers.get("X-User"))
