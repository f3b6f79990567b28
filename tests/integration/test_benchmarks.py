"""The benchmark suite keeps working: a tiny run of every scenario (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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

    def test_signing_bench_runs(self) -> None:
        """``benchmarks.signing_bench --quick`` exits 0 (its receiver got every POST) and
        reports each figure of HMAC and ed25519."""
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.signing_bench", "--quick"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=240,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        for kind in ("hmac", "ed25519"):
            assert figures[f"sign_{kind}_us"] > 0
            assert figures[f"verify_{kind}_us"] > 0
            assert figures[f"{kind}_deliveries_per_s"] > 0

    def test_secrets_bench_runs(self) -> None:
        """``benchmarks.secrets_bench --quick`` exits 0 (its receiver got every POST) and
        reports signing with two secrets, decryption, and each variant's rate."""
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.secrets_bench", "--quick"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=240,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        for name in ("sign_one_secret_us", "sign_two_secrets_us", "decrypt_cached_us"):
            assert figures[name] > 0
        for scenario in ("a", "b"):
            for variant in ("clear", "encrypted", "rotating"):
                assert figures[f"({scenario})_{variant}_deliveries_per_s"] > 0

    def test_telemetry_bench_runs(self) -> None:
        """``benchmarks.telemetry_bench --quick`` exits 0 (its receiver got every POST, the
        telemetry of the API and SDK apps was active) and reports each variant's rate."""
        pytest.importorskip("opentelemetry.sdk", reason="needs opentelemetry-sdk")
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.telemetry_bench", "--quick"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=240,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        for variant in ("off", "api", "sdk"):
            assert figures[f"{variant}_deliveries_per_s"] > 0
        assert figures["api_telemetry_us_per_delivery"] > 0
