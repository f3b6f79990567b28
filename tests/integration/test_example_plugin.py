"""A third-party dispatcher, installed as a package, is chosen by its entry-point name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "thorn-jsonl-dispatcher"


class TestJSONLinesPlugin:
    """examples/thorn-jsonl-dispatcher registers ``jsonl`` in the thorn.dispatchers group."""

    def test_installed_plugin_is_used_by_name(self, tmp_path: Path) -> None:
        """After ``pip install``, THORN_DISPATCHER="jsonl" writes events instead of sending."""
        target = tmp_path / "site"
        subprocess.run(  # noqa: S603 - pip on the project's own example
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                str(PLUGIN),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        out = tmp_path / "events.jsonl"
        script = textwrap.dedent(
            """
            import datetime
            from thorn_core import Event, Thorn
            from thorn_core.dispatchers import available

            assert "jsonl" in available(), available()
            Thorn({"THORN_DISPATCHER": "jsonl",
                   "THORN_SUBSCRIBERS": {"user.*": "https://hooks.example.com/in"}})
            result = Event("user.created").send(
                {"id": 1, "at": datetime.datetime(2026, 1, 2, 3, 4, 5)})
            print(result.state)
            """
        )
        env = {**os.environ, "PYTHONPATH": str(target), "THORN_JSONL_PATH": str(out)}
        run = subprocess.run(  # noqa: S603 - a fixed script
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "queued"
        (line,) = out.read_text().splitlines()
        record = json.loads(line)
        assert record["event"] == "user.created"
        assert record["data"] == {"id": 1, "at": "2026-01-02T03:04:05"}
        assert record["subscribers"] == ["https://hooks.example.com/in"]

    def test_without_the_plugin_the_name_is_unknown(self) -> None:
        """Without the package, the same name is an error that lists the known dispatchers."""
        script = (
            "from thorn_core import Thorn, UnknownDispatcher\n"
            "try:\n    Thorn({'THORN_DISPATCHER': 'jsonl'})\n"
            "except UnknownDispatcher as exc:\n    print(exc)\n"
        )
        run = subprocess.run(  # noqa: S603 - a fixed script
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert "Unknown dispatcher 'jsonl'" in run.stdout
        assert "default" in run.stdout
