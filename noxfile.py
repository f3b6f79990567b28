"""Nox sessions: tests per part, lint, typecheck, docs."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

#: None: the interpreter nox runs with (CI's python3), so no particular version must exist.
PYTHON = None


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The core tests with no web framework and no Celery installed (proves the isolation)."""
    session.install("-e", ".[test-core]")
    session.run("pytest", "tests/core", *session.posargs)


@nox.session(python=PYTHON)
def tests_celery(session: nox.Session) -> None:
    """The Celery dispatcher with real workers on Redis and RabbitMQ (127.0.0.1).

    A broker that is not running skips its tests locally; with CI=true they fail instead.
    """
    session.install("-e", ".[test]")
    session.run("pytest", "tests/celery", *session.posargs)


@nox.session(python=PYTHON)
def tests_flask(session: nox.Session) -> None:
    """The Flask adapter on SQLite and PostgreSQL (127.0.0.1)."""
    session.install("-e", ".[test-core,flask]", "psycopg[binary]>=3.1")
    session.run("pytest", "tests/flask", *session.posargs)


@nox.session(python=PYTHON)
def tests_django(session: nox.Session) -> None:
    """The Django adapter on SQLite, then on PostgreSQL (127.0.0.1)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/django", *session.posargs)
    session.run(
        "pytest", "tests/django", *session.posargs, env={"THORN_TEST_DATABASE": "postgresql"}
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmark suite: prints a table of medians and ratios and writes JSON."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on thorn_core (with Celery, which the celery dispatcher imports)."""
    session.install(
        "-e",
        ".[celery,ed25519,catalog,otel,redis]",
        "mypy>=1.10",
        "types-requests",
        "types-jsonschema",
        "pytest>=8",
    )
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site: the settings page must be current, then a strict MkDocs build.

    Warnings (broken links, pages missing from the nav, API docstrings that do not parse)
    are errors.
    """
    session.install("-e", ".[docs]")
    session.run("python", "tools/settings_reference.py", "--check")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        "site",
        *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},  # mkdocs-material's banner about its successor
    )
