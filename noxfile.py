"""Nox sessions: tests per part, lint, typecheck."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The core tests with no web framework and no Celery installed (proves the isolation)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/core", *session.posargs)


@nox.session(python=PYTHON)
def tests_celery(session: nox.Session) -> None:
    """The Celery dispatcher with real workers on Redis and RabbitMQ (127.0.0.1).

    A broker that is not running skips its tests locally; with CI=true they fail instead.
    """
    session.install("-e", ".[test]")
    session.run("pytest", "tests/celery", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on thorn_core (with Celery, which the celery dispatcher imports)."""
    session.install("-e", ".[celery]", "mypy>=1.10", "types-requests")
    session.run("mypy")
