"""A Flask app that commits an article with ``THORN_OUTBOX`` on and is killed before relaying.

Run by ``test_reliability.py`` as ``python -m tests.flask._crash_child CONFIG_JSON``; the
config holds the Flask-SQLAlchemy keys of the parent's database.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import flask

from thorn_flask import Thorn

from .app import LOOPBACK, Article, Subscription, db, register_routes


def main(config: dict[str, object]) -> None:
    """Commit one article (stored in the outbox by that commit), then die by SIGKILL."""
    app = flask.Flask("crash")
    app.config.update(config, THORN_OUTBOX=True, THORN_RECIPIENT_VALIDATORS=LOOPBACK)
    app.config["SERVER_NAME"] = "example.test"
    db.init_app(app)
    Thorn(app, db=db, model=Subscription, current_user=lambda: None)
    register_routes(app)
    with app.app_context():
        db.session.add(Article(title="committed, then killed"))
        db.session.commit()
        print("committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
