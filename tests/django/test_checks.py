"""System checks: ``manage.py check`` reports bad THORN_ settings with stable ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from thorn_django.checks import CHECKS


def check_output(**overrides: Any) -> str:
    """The output of ``check`` with ``overrides`` applied ('' when it passes)."""
    from django.test import override_settings

    with override_settings(**overrides):
        try:
            call_command("check")
        except SystemCheckError as exc:
            return str(exc)
    return ""


def _unimportable_signer(digest: str, secret: str, body: bytes) -> str:
    raise AssertionError("never called")


class TestChecks:
    def test_valid_settings_pass(self) -> None:
        """The test project's settings pass every check."""
        assert check_output() == ""

    @pytest.mark.parametrize(
        ("overrides", "check_id", "text"),
        [
            ({"THORN_DISPATCHER": "carrier-pigeon"}, "thorn.E001", "Unknown dispatcher"),
            ({"THORN_SUBSCRIBERS": {"user.*.x": "https://example.com/"}}, "thorn.E003", "user.*.x"),
            ({"THORN_SUBSCRIBERS": {"*": 42}}, "thorn.E003", "THORN_SUBSCRIBERS"),
            ({"THORN_HMAC_SIGNER": "no_such_module:sign"}, "thorn.E004", "no_such_module"),
            ({"THORN_RECIPIENT_VALIDATORS": ["no_such_validator"]}, "thorn.E005", "unknown"),
            ({"THORN_RETRY_MAX": "ten"}, "thorn.E006", "THORN_RETRY_MAX"),
            ({"THORN_CODECS": {"text/csv": "no_such_module:codec"}}, "thorn.E008", "text/csv"),
            ({"THORN_SUBSCRIBER_MODEL": "nope.Missing"}, "thorn.E009", "nope.Missing"),
            ({"THORN_DRF_PERMISSION_CLASSES": ["nope.Perm"]}, "thorn.E010", "nope.Perm"),
        ],
    )
    def test_each_problem_has_its_id(
        self, overrides: dict[str, Any], check_id: str, text: str
    ) -> None:
        """Each kind of bad setting is reported under its own id, naming the culprit."""
        output = check_output(**overrides)
        assert f"({check_id})" in output
        assert text in output

    def test_unknown_thorn_setting(self, settings: Any) -> None:
        """A misspelt THORN_ setting is E006."""
        output = check_output(THORN_DISPATCHR="default")
        assert "(thorn.E006)" in output
        assert "THORN_DISPATCHR" in output

    def test_celery_not_installed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``THORN_DISPATCHER = 'celery'`` without Celery installed is E002."""
        monkeypatch.setitem(sys.modules, "celery", None)
        monkeypatch.delitem(sys.modules, "thorn_core.dispatchers.celery", raising=False)
        output = check_output(THORN_DISPATCHER="celery")
        assert "(thorn.E002)" in output
        assert "not installed" in output

    def test_dispatcher_refusing_its_settings(self) -> None:
        """A dispatcher that loads but refuses its configuration is E007."""
        output = check_output(THORN_DISPATCHER="celery", THORN_CELERY_APP="no_such:app")
        assert "(thorn.E007)" in output

    def test_every_id_documented(self) -> None:
        """Every check id appears in the table of docs/django.md."""
        docs = (Path(__file__).parents[2] / "docs" / "django.md").read_text()
        for check_id in CHECKS:
            assert f"`{check_id}`" in docs, check_id

    def test_manage_py_check(self, tmp_path: Path) -> None:
        """``manage.py check`` in a fresh process prints the id and exits non-zero."""
        (tmp_path / "bad_settings.py").write_text(
            "from tests.django.settings import *\nTHORN_DISPATCHER = 'carrier-pigeon'\n"
        )
        root = Path(__file__).parents[2]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bad_settings",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
        }
        done = subprocess.run(  # noqa: S603 -- our interpreter and manage.py
            [sys.executable, str(root / "tests" / "django" / "manage.py"), "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert "thorn.E001" in done.stderr
        assert "carrier-pigeon" in done.stderr


class TestMigrations:
    @pytest.mark.django_db
    def test_up_to_date(self) -> None:
        """``makemigrations --check`` finds nothing to do for thorn_django and the test app."""
        call_command(
            "makemigrations", "thorn_django", "testapp", "--check", "--dry-run", verbosity=0
        )
