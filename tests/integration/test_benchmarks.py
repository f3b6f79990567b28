"""The benchmark suite keeps working: a tiny run of every scenario (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class TestBenchmarkSmoke:
    """``python -m benchmarks --quick`` runs every scenario and checks its own counts."""

    def test_quick_run_covers_every_scenario(self, tmp_path: Path) -> None:
        """A quick run exits 0, delivers every POST it sends, and records each scenario."""
        out = tmp_path / "bench.json"
        subprocess.run(  # noqa: S603 - our own module
            [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=240,
        )
        report = json.loads(out.read_text())
        results = report["results"]
        for name in ("a.raw", "a.hand", "a.thorn", "b.hand", "b.thorn", "c.hand", "c.thorn"):
            assert results[name]["received"] == results[name]["posts"] > 0
        assert results["d.sqlite.10000"]["queries_per_send"] == 1.0
        assert set(report["ratios"]) >= {"a: thorn vs hand loop (x faster)"}
