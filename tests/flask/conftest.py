"""Flask fixtures: apps on SQLite or PostgreSQL, loopback opt-in, real receivers on 127.0.0.1."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_sqlalchemy")

import flask
import sqlalchemy

from thorn_flask import DeliveryAttempt, OutboxEvent, Thorn, get_state

from .app import LOOPBACK, Subscription, db, register_routes, store_subscription

#: Thorn's own tables (the ready models on ``thorn_flask.Base``) that the tests create.
THORN_TABLES = [
    DeliveryAttempt.metadata.tables[model.__tablename__] for model in (DeliveryAttempt, OutboxEvent)
]

POSTGRES_URL = os.environ.get(
    "THORN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_schema() -> str | None:
    """A fresh schema in the PostgreSQL test database, or None (skip) when unreachable."""
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        schema = f"thorn_flask_{uuid.uuid4().hex[:8]}"
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        engine.dispose()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable on CI: {exc}")
        return None
    return schema


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str | None]:
    """A schema of our own in the PostgreSQL test database, dropped at the end."""
    schema = _postgres_schema()
    yield schema
    if schema is not None:
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schema: str | None
) -> dict[str, Any]:
    """Flask-SQLAlchemy config for a fresh SQLite file, or for our PostgreSQL schema."""
    if request.param == "sqlite":
        return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"}
    if postgres_schema is None:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable")
    return {
        "SQLALCHEMY_DATABASE_URI": POSTGRES_URL,
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "connect_args": {"options": f"-csearch_path={postgres_schema}"}
        },
    }


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., flask.Flask]]:
    """Build Flask apps with Thorn and the test models; their tables are dropped afterwards."""
    apps: list[flask.Flask] = []

    def make(config: dict[str, Any] | None = None, **options: Any) -> flask.Flask:
        app = flask.Flask(f"app{len(apps)}")
        app.config.update(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / f'app{len(apps)}.db'}",
            THORN_RECIPIENT_VALIDATORS=LOOPBACK,
            SERVER_NAME="example.test",
        )
        app.config.update(config or {})
        db.init_app(app)
        options.setdefault("current_user", lambda: flask.request.headers.get("X-User"))
        Thorn(app, db=db, model=Subscription, **options)
        register_routes(app)
        with app.app_context():
            db.drop_all()
            db.create_all()
            DeliveryAttempt.metadata.drop_all(db.engine, tables=THORN_TABLES)
            DeliveryAttempt.metadata.create_all(db.engine, tables=THORN_TABLES)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            DeliveryAttempt.metadata.drop_all(db.engine, tables=THORN_TABLES)
            db.engine.dispose()
        get_state(app).core.close()


@pytest.fixture
def app(make_app: Callable[..., flask.Flask], database: dict[str, Any]) -> flask.Flask:
    """A Flask app with Thorn, on SQLite and on PostgreSQL."""
    return make_app(database)


@pytest.fixture
def subscribe(app: flask.Flask) -> Callable[..., Subscription]:
    """Store a subscription in ``app``'s database (``url``, ``event="*"``, other fields)."""
    return functools.partial(store_subscription, app)
