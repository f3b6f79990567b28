"""Thorn's benchmark suite: ``python -m benchmarks [--quick] [--json PATH]``.

Every scenario runs in a fresh process pinned to CPU 0, against a keep-alive receiver in
its own process pinned to CPU 1; every run checks that the receiver got every POST sent.
Baselines are measured in the same run: a hand-written ``requests.Session`` loop with an
HMAC header (what a user writes instead of Thorn) and a raw keep-alive ``http.client`` loop
(the single-thread limit). Figures are medians of the repetitions; ratios are "times faster
than" (higher is better) except RSS. Nothing here is a test: it prints and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.loopback_receiver import ROOT, ReceiverProcess


def _postgres_reachable() -> bool:
    try:
        import psycopg

        from benchmarks.stores import POSTGRES_URL

        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except Exception:
        return False
    return True


def run_many(processes: int, scenario: str, **options: Any) -> dict[str, Any]:
    """Run a receiver-less scenario in several fresh processes; the median is over every
    repetition of all of them (a short scenario varies more between processes than within)."""
    runs = [run(scenario, None, **options) for _ in range(processes)]
    merged = dict(runs[-1])
    merged["us_per_event"] = [v for r in runs for v in r["us_per_event"]]
    merged["peak_rss_kib"] = max(r["peak_rss_kib"] for r in runs)
    merged["median_us"] = statistics.median(merged["us_per_event"])
    return merged


def run(scenario: str, receiver: ReceiverProcess | None, **options: Any) -> dict[str, Any]:
    """Run one scenario in a fresh process; check the receiver got what was sent."""
    command = [sys.executable, "-m", "benchmarks.scenarios", scenario]
    if receiver is not None:
        command += ["--url", receiver.url]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    before = receiver.count() if receiver is not None else 0
    output = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        command, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    if receiver is not None:
        received = receiver.wait_for(before + result["posts"]) - before
        if received != result["posts"]:
            raise SystemExit(f"{scenario}: sent {result['posts']} POSTs, received {received}")
        result["received"] = received
    result["median_us"] = statistics.median(result["us_per_event"])
    return result


def main() -> None:
    """Run the suite, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks it works")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json"
    )
    args = parser.parse_args()
    scale = 0.02 if args.quick else 1.0

    def n(count: int) -> int:
        return max(2, int(count * scale))

    reps = 2 if args.quick else 5
    results: dict[str, dict[str, Any]] = {}
    started = time.time()

    fast = ReceiverProcess()
    try:
        for name, scenario, subs, events in [
            ("a.raw", "raw", 1, 1000),
            ("a.hand", "hand", 1, 1000),
            ("a.thorn", "thorn", 1, 1000),
            ("b.hand", "hand", 10, 150),
            ("b.thorn", "thorn", 10, 150),
        ]:
            results[name] = run(
                scenario, fast, subscribers=subs, events=n(events), reps=reps, warmup=n(50)
            )
    finally:
        fast.stop()

    slow = ReceiverProcess(delay=0.02)
    try:
        for name, scenario in [("c.hand", "hand"), ("c.thorn", "thorn")]:
            results[name] = run(
                scenario,
                slow,
                subscribers=10,
                events=n(15 if scenario == "hand" else 100),
                reps=3 if not args.quick else 2,
                warmup=2,
            )
    finally:
        slow.stop()

    stores = ["sqlite"] + (["postgres"] if _postgres_reachable() else [])
    results["d.static"] = run_many(
        1 if args.quick else 5, "nosub", events=n(20000), reps=reps, warmup=n(1000)
    )
    for store in stores:
        # 10 and 10,000 stored subscribers in alternation in one process. PostgreSQL's
        # server needs a core too: the sender is not pinned then.
        pair = run(
            "stored",
            None,
            store=store,
            stored=10000,
            events=n(3000),
            reps=reps + 2,
            warmup=n(500),
            cpu=-1 if store == "postgres" else 0,
        )
        results[f"d.{store}.10"] = pair
        large = dict(pair, us_per_event=pair["large_us_per_event"])
        large["median_us"] = statistics.median(large["us_per_event"])
        results[f"d.{store}.10000"] = large

    ratios = {
        "a: thorn vs hand loop (x faster)": results["a.hand"]["median_us"]
        / results["a.thorn"]["median_us"],
        "a: thorn vs raw http.client (x faster)": results["a.raw"]["median_us"]
        / results["a.thorn"]["median_us"],
        "b: thorn vs hand loop, 10 subscribers (x faster)": results["b.hand"]["median_us"]
        / results["b.thorn"]["median_us"],
        "c: thorn vs serial hand loop, 10 x 20 ms (x faster)": results["c.hand"]["median_us"]
        / results["c.thorn"]["median_us"],
    }
    for store in stores:
        ratios[f"d: {store} 10,000 vs 10 stored (time ratio)"] = (
            results[f"d.{store}.10000"]["median_us"] / results[f"d.{store}.10"]["median_us"]
        )
    rss = {
        "e: peak RSS thorn - hand loop (MiB)": (
            results["a.thorn"]["peak_rss_kib"] - results["a.hand"]["peak_rss_kib"]
        )
        / 1024,
    }

    print(f"{'scenario':<22}{'median us/event':>17}{'reps (us)':>40}{'POSTs':>9}{'RSS MiB':>9}")
    for name, result in results.items():
        shown = result["us_per_event"]
        runs = ", ".join(f"{v:.1f}" for v in shown[:5]) + (", ..." if len(shown) > 5 else "")
        extra = ""
        if "queries_per_send" in result:
            extra = f"  queries/send={result['queries_per_send']:.2f}"
        print(
            f"{name:<22}{result['median_us']:>17.1f}{runs:>40}{result['posts']:>9}"
            f"{result['peak_rss_kib'] / 1024:>9.1f}{extra}"
        )
    print()
    for label, value in {**ratios, **rss}.items():
        print(f"{label:<56}{value:>8.2f}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "when": started,
                "quick": args.quick,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": results,
                "ratios": ratios,
                "rss": rss,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
