"""A Flask app whose model changes become verified webhooks: run ``python app.py``.

It starts a receiving Flask app (with ``verify_webhook``) on 127.0.0.1, subscribes it to
``article.*``, publishes an article, and prints what the receiver verified.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.serving import make_server

from thorn_core import ModelEvent, model_reverser
from thorn_core.validators import allow_cidr_network, block_internal_ips, ensure_protocol
from thorn_core.verification import VerifiedWebhook
from thorn_flask import (
    DeliveryAttempt,
    SubscriberMixin,
    Thorn,
    create_blueprint,
    verify_webhook,
    webhook_model,
)


class Model(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Model)
thorn = Thorn(db=db)


class Subscriber(SubscriberMixin, db.Model):
    """Stored subscriptions, table ``thorn_subscriber``."""


@dataclasses.dataclass
class ArticleData:
    """What an article's webhooks carry in ``data``."""

    title: str
    state: str


@webhook_model(reverse=model_reverser("article", id="id"))
class Article(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="DRAFT")

    class webhooks:
        schema = ArticleData  # the event catalog's schema of ``data``, for both events
        on_create = ModelEvent(
            "article.created",
            description="An article was written (it starts as a draft).",
            examples=[{"title": "Webhooks with Flask", "state": "DRAFT"}],
        )
        on_publish = ModelEvent(
            "article.published",
            state__now_eq="PUBLISHED",
            description="An article was published: its state became PUBLISHED.",
            examples=[{"title": "Webhooks with Flask", "state": "PUBLISHED"}],
        ).dispatches_on_change()

        def payload(self, article: Article) -> dict[str, Any]:
            return {"title": article.title, "state": article.state}


def create_app(database: str) -> Flask:
    """The application factory of the sending app."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database,
        SERVER_NAME="blog.example",
        # Deliveries to loopback are refused by default; this demo opens 127.0.0.0/8 only.
        THORN_RECIPIENT_VALIDATORS=[
            ensure_protocol("http", "https"),
            block_internal_ips(),
            allow_cidr_network("127.0.0.0/8"),
        ],
    )
    db.init_app(app)
    thorn.init_app(app, model=Subscriber, current_user=lambda: None)
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")

    @app.get("/articles/<int:id>")
    def article(id: int) -> str:
        return str(db.get_or_404(Article, id).title)

    return app


def create_receiver(secrets: dict[str, str], received: list[VerifiedWebhook]) -> Flask:
    """The receiving side: a view that only runs for webhooks signed with a known secret."""
    app = Flask("receiver")

    @app.post("/webhooks")
    @verify_webhook(secret=lambda request: list(secrets.values()))
    def webhooks(webhook: VerifiedWebhook) -> tuple[str, int]:
        received.append(webhook)
        return "", 204

    return app


def main() -> None:
    secrets: dict[str, str] = {}
    received: list[VerifiedWebhook] = []
    server = make_server("127.0.0.1", 0, create_receiver(secrets, received))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks"
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(f"sqlite:///{Path(tmp) / 'blog.db'}")
        with app.app_context():
            db.create_all()  # the app's tables and Thorn's (in production: a migration)
            subscriber = Subscriber(event="article.*", url=url)
            db.session.add(subscriber)
            db.session.commit()
            secrets[str(subscriber.uuid)] = subscriber.hmac_secret

            article = Article(title="Webhooks with Flask")
            db.session.add(article)
            db.session.commit()  # article.created goes out now, after the commit
            article.state = "PUBLISHED"
            db.session.commit()  # article.published (the state became PUBLISHED)
            attempts = db.session.query(DeliveryAttempt).count()  # the delivery log
            db.engine.dispose()
    server.shutdown()
    for webhook in received:
        print(f"verified {webhook.event} (delivery {webhook.delivery_id}): {webhook.payload}")
    assert [w.event for w in received] == ["article.created", "article.published"]
    print(f"logged {attempts} delivery attempts")


if __name__ == "__main__":
    main()
