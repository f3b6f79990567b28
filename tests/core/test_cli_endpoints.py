"""``thorn endpoints``: the health of endpoints (circuit state, failure rate, requests, next
probe) as a table or JSON, for an app's static subscribers or for endpoints named."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from thorn_core import Thorn
from thorn_core.cli import main

from ._health_support import REDIS_URL, require_redis

THORN = Path(sys.executable).with_name("thorn")

APP_SOURCE = """
from thorn_core import Thorn

app = Thorn(
    {
        "THORN_CIRCUIT_MIN_REQUESTS": 2,
        "THORN_SUBSCRIBERS": {
            "order.*": ["https://Shop.example.com/a", "https://shop.example.com:443/b"],
            "user.created": {"url": "http://users.example.com:8080/in", "endpoint": "users"},
        },
    },
    set_as_current=False,
)


def make_app():
    return app


not_an_app = 42
"""


def run(*args: str) -> Result:
    """Run ``thorn ARGS`` in this process."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a fresh module defining ``app`` (two endpoints), importable from the
    working directory as ``--app`` finds it."""
    name = f"webhooks_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def loaded(name: str) -> Thorn:
    """The app of module ``name``, as the command loaded it."""
    app = sys.modules[name].app
    assert isinstance(app, Thorn)
    return app


class TestStaticSubscribers:
    def test_the_table_lists_each_endpoint_once(self, module: str) -> None:
        """One row per endpoint (URL origin or the subscriber's ``endpoint``), counting its
        subscriptions; every circuit closed at first."""
        result = run("endpoints", "--app", f"{module}:app")
        assert result.exit_code == 0, result.output
        rows = [line.split() for line in result.output.splitlines()]
        assert rows[0] == [
            "ENDPOINT",
            "STATE",
            "FAILURE",
            "RATE",
            "REQUESTS",
            "NEXT",
            "PROBE",
            "SUBSCRIPTIONS",
        ]
        assert rows[1:] == [
            ["https://shop.example.com:443", "closed", "0%", "0", "-", "2"],
            ["users", "closed", "0%", "0", "-", "1"],
        ]

    def test_an_open_circuit_comes_first_with_its_next_probe(self, module: str) -> None:
        """After failures open a circuit, its row comes first: open, 100%, the requests of
        the window and the wait until the probe."""
        run("endpoints", "--app", f"{module}:app")
        health = loaded(module).health
        health.record("users", ok=True, duration=0.01)
        for _ in range(3):
            health.record("users", ok=False, duration=0.01)
        result = run("endpoints", "--app", f"{module}:make_app")
        rows = [line.split() for line in result.output.splitlines()]
        assert rows[1][:4] == ["users", "open", "75%", "4"]
        assert rows[1][4] == "in"
        assert 0 < int(rows[1][5].removesuffix("s")) <= 10  # THORN_CIRCUIT_COOLOFF
        assert rows[2][:2] == ["https://shop.example.com:443", "closed"]

    def test_json(self, module: str) -> None:
        """``--json`` prints every status field per endpoint, times in ISO 8601."""
        run("endpoints", "--app", f"{module}:app")
        health = loaded(module).health
        for _ in range(2):
            health.record("users", ok=False, duration=0.01)
        reports = json.loads(run("endpoints", "--app", f"{module}:app", "--json").output)
        assert [r["endpoint"] for r in reports] == ["users", "https://shop.example.com:443"]
        users = reports[0]
        assert users["state"] == "open"
        assert (users["requests"], users["failures"], users["failure_rate"]) == (2, 2, 1.0)
        assert users["next_probe_at"] > users["opened_at"]
        assert users["subscriptions"] == 1
        assert set(users) == {
            "endpoint",
            "state",
            "failure_rate",
            "requests",
            "failures",
            "opened_at",
            "next_probe_at",
            "failure_streak",
            "slow_until",
            "subscriptions",
        }

    def test_named_endpoints_only(self, module: str) -> None:
        """Named endpoints (a URL stands for its origin) are the only rows, known or not."""
        result = run(
            "endpoints", "--app", f"{module}:app", "https://SHOP.example.com/x", "elsewhere"
        )
        rows = [line.split() for line in result.output.splitlines()[1:]]
        assert [(row[0], row[-1]) for row in rows] == [
            ("elsewhere", "0"),
            ("https://shop.example.com:443", "2"),
        ]


class TestErrors:
    @pytest.mark.parametrize(
        ("spec", "words"),
        [
            ("nowhere_at_all:app", ["--app", "cannot import module 'nowhere_at_all'"]),
            ("no-colon", ["--app", "package.module:name"]),
            ("{module}:missing", ["--app", "has no attribute 'missing'"]),
            ("{module}:not_an_app", ["--app", "is a int, not a Thorn app"]),
        ],
    )
    def test_a_bad_app_is_a_usage_error(self, module: str, spec: str, words: list[str]) -> None:
        """An ``--app`` naming nothing importable, or no app, is one usage error line."""
        result = run("endpoints", "--app", spec.format(module=module))
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        for word in words:
            assert word in result.output

    def test_app_and_health_url_together(self) -> None:
        """``--app`` and ``--health-url`` exclude each other."""
        result = run("endpoints", "--app", "x:y", "--health-url", REDIS_URL)
        assert result.exit_code == 2
        assert "give --app or --health-url, not both" in result.output

    def test_without_an_app_or_names(self) -> None:
        """Without static subscribers or names there is nothing to show, and it says so."""
        result = run("endpoints")
        assert result.exit_code == 0
        assert result.output.strip() == "No endpoints."


def test_a_redis_store_is_read_from_another_process() -> None:
    """Failures recorded by one process in the Redis store show in ``thorn endpoints
    --health-url`` run as a separate command."""
    require_redis()
    key = f"https://{uuid.uuid4().hex}.example.com:443"
    settings = {"THORN_HEALTH_URL": REDIS_URL, "THORN_CIRCUIT_MIN_REQUESTS": 3}
    with Thorn(settings, set_as_current=False) as app:
        try:
            for _ in range(3):
                app.health.record(key, ok=False, duration=0.01)
            done = subprocess.run(  # noqa: S603 - our own console script
                [str(THORN), "endpoints", "--health-url", REDIS_URL, "--json", key],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            app.health.reset(key)
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)
    assert report["endpoint"] == key
    assert report["state"] == "open"
    assert report["failures"] == 3
