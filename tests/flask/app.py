"""Models and routes of the Flask tests: articles with authors and tags, on Flask-SQLAlchemy."""

from __future__ import annotations

from typing import Any

import flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Column, ForeignKey, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from thorn_core import ModelEvent, model_reverser
from thorn_core.testing import loopback_validators
from thorn_flask import SubscriberMixin, webhook_model

#: Recipient validators that keep the safety checks but allow loopback, for tests.
LOOPBACK = loopback_validators()


class Model(DeclarativeBase):
    """The declarative base of the test models."""


db = SQLAlchemy(model_class=Model)


class Subscription(SubscriberMixin, db.Model):  # type: ignore[name-defined,misc]
    """The subscriber model of the tests: the mixin on Flask-SQLAlchemy's ``db.Model``."""


class Author(db.Model):  # type: ignore[name-defined,misc]
    """Who writes articles; an article's events are sent with its author as sender."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


article_tags = Table(
    "article_tag",
    db.metadata,
    Column("article_id", ForeignKey("article.id"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id"), primary_key=True),
)


class Tag(db.Model):  # type: ignore[name-defined,misc]
    """A tag on articles (many-to-many)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


@webhook_model(sender_field="author")
class Article(db.Model):  # type: ignore[name-defined,misc]
    """An article: created, changed, published, tagged and deleted with webhooks."""

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="DRAFT")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=article_tags)

    class webhooks:
        reverse = model_reverser("article_detail", id="id")

        on_create = ModelEvent("article.created")
        on_change = ModelEvent("article.changed")
        on_delete = ModelEvent("article.removed")
        on_publish = ModelEvent(
            "article.published", state__now_eq="PUBLISHED"
        ).dispatches_on_change()
        on_tagged = ModelEvent("article.tagged").dispatches_on_m2m_add("tags")
        on_untagged = ModelEvent("article.untagged").dispatches_on_m2m_remove("tags")
        on_cleared = ModelEvent("article.tags_cleared").dispatches_on_m2m_clear("tags")

        def payload(self, article: Article) -> dict[str, Any]:
            return {"title": article.title, "state": article.state}


def register_routes(app: flask.Flask) -> None:
    """The article view that model events reverse to with ``url_for``."""

    @app.get("/articles/<int:id>")
    def article_detail(id: int) -> str:
        return str(id)


def store_subscription(app: flask.Flask, url: str, event: str = "*", **fields: Any) -> Subscription:
    """Store a subscription in ``app``'s database; return it detached, loaded."""
    with app.app_context():
        row = Subscription(url=url, event=event, **fields)
        db.session.add(row)
        db.session.commit()
        db.session.refresh(row)
        db.session.expunge(row)
        return row
