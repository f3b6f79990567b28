"""The example project in examples/django_project delivers a verified webhook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "django_project"


class TestExampleProject:
    @pytest.mark.parametrize("outbox", ["0", "1"], ids=["direct", "outbox"])
    def test_deliver_demo(self, tmp_path: Path, outbox: str) -> None:
        """``migrate`` then ``deliver_demo`` print the two verified order webhooks, with the
        outbox too (relayed by ``thorn_relay``)."""
        env = {**os.environ, "SHOP_DATABASE": str(tmp_path / "shop.sqlite3")}
        env["THORN_OUTBOX"] = outbox
        env.pop("DJANGO_SETTINGS_MODULE", None)
        for command in (["migrate", "-v0"], ["deliver_demo"]):
            done = subprocess.run(  # noqa: S603 -- our interpreter and manage.py
                [sys.executable, "manage.py", *command],
                cwd=EXAMPLE,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
        assert "Verified order.created" in done.stdout
        assert "Verified order.paid" in done.stdout
        assert '"state": "PAID"' in done.stdout
        assert ("Relayed 1 events" in done.stdout) == (outbox == "1")
