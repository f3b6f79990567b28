"""Importing thorn_core pulls in no framework, no Celery and not even requests."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("flask", "django", "celery", "sqlalchemy", "kombu", "requests")


def imported_after(statement: str) -> set[str]:
    """The top-level module names in sys.modules after ``statement`` runs in a fresh interpreter."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {name.partition(".")[0] for name in json.loads(completed.stdout)}


class TestImportHygiene:
    """The core stays free of heavy and framework imports."""

    def test_import_thorn_core(self):
        """``import thorn_core`` imports no framework, no Celery or Kombu, and not requests."""
        loaded = imported_after("import thorn_core")

        assert "thorn_core" in loaded
        assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))

    @pytest.mark.parametrize(
        "statement",
        [
            "from thorn_core import Thorn, Event, buffer_events",
            "import thorn_core.receiver, thorn_core.signals, thorn_core.validators",
            "import thorn_core.dispatchers.default, thorn_core.dispatchers.disabled",
            "import thorn_core; thorn_core.Thorn({'THORN_DISPATCHER': 'disabled'})",
        ],
    )
    def test_core_modules_and_app(self, statement):
        """The core modules, and building an app, import no framework and no Celery."""
        loaded = imported_after(statement)

        assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))

    def test_entry_points_are_not_scanned_at_import(self):
        """Importing thorn_core.dispatchers reads no entry points; the first lookup does."""
        code = (
            "import thorn_core.dispatchers as d; "
            "assert d._entry_points is None, 'entry points read at import'"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603
