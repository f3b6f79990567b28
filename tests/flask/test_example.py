"""The Flask example app runs: a model change is delivered and verified on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "flask_app" / "app.py"


class TestExample:
    """``examples/flask_app/app.py`` works as the getting-started page says."""

    def test_example_delivers_verified_webhooks(self) -> None:
        """The script prints both verified deliveries and exits 0."""
        result = subprocess.run(  # noqa: S603 -- our own script, with this interpreter
            [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "verified article.created" in result.stdout
        assert "verified article.published" in result.stdout
