"""The payload-validation benchmark keeps working (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class TestCatalogBench:
    """``python -m benchmarks.catalog_bench --quick``."""

    def test_runs_and_reports_every_variant(self) -> None:
        """It exits 0 and reports the cost of a send per validation variant, and what each
        adds to "off", for the 1 KiB payload and the 20-property schema."""
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.catalog_bench", "--quick"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=240,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])

        assert figures["properties"] == 20
        assert 900 <= figures["payload_bytes"] <= 1100
        assert set(figures["us_per_send"]) == {
            "off",
            "raise (fastjsonschema)",
            "raise (jsonschema only)",
        }
        assert all(value > 0 for value in figures["us_per_send"].values())
        assert set(figures["us_added"]) == {"raise (fastjsonschema)", "raise (jsonschema only)"}
