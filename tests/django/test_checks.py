"""System checks: ``manage.py check`` reports bad THORN_ settings with stable ids."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from thorn_core import ImproperlyConfigured, model_reverser
from thorn_core.log import MemoryDeliveryLog
from thorn_django.checks import CHECKS

from .testapp.models import Note


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
            ({"THORN_DELIVERY_LOG": "no_such_module:Log"}, "thorn.E011", "no_such_module"),
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


class NeedsAPath(MemoryDeliveryLog):
    """A delivery log that cannot be made without arguments."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


def _subscribers_of(event: str, sender: Any = None, **context: Any) -> list[str]:
    return ["https://hooks.example.com/computed"]


class TestStartupErrors:
    """What used to fail when a model was saved is reported by ``manage.py check``."""

    def test_urls_and_callables_in_one_list_pass(self) -> None:
        """A THORN_SUBSCRIBERS list mixing URLs and callables (as in 1.x) passes."""
        assert (
            check_output(THORN_SUBSCRIBERS={"user.*": ["https://example.com/", _subscribers_of]})
            == ""
        )

    def test_delivery_log_class_passes(self) -> None:
        """THORN_DELIVERY_LOG given as a class is made into a log: no error."""
        assert check_output(THORN_DELIVERY_LOG=MemoryDeliveryLog) == ""

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            ("no_such_module:Log", "no_such_module"),
            (NeedsAPath, "cannot be created without arguments"),
            ("thorn_core.signing:hook_hmac", "is not a delivery log"),
        ],
    )
    def test_bad_delivery_log(self, value: Any, text: str) -> None:
        """A delivery log that cannot be loaded or made is E011, naming the problem."""
        output = check_output(THORN_DELIVERY_LOG=value)
        assert "(thorn.E011)" in output
        assert text in output

    def test_missing_site_id(self, settings: Any) -> None:
        """Sites installed without SITE_ID is E012, naming the models whose refs need it."""
        del settings.SITE_ID
        output = check_output()
        assert "(thorn.E012)" in output
        assert "testapp.Article" in output
        assert "testapp.Note" in output

    def test_base_url_instead_of_site_id(self, settings: Any) -> None:
        """With THORN_BASE_URL, refs do not need the current site: no E012."""
        del settings.SITE_ID
        assert check_output(THORN_BASE_URL="https://shop.example.com") == ""

    @pytest.mark.parametrize("view_name", ["no-such-view", "nowhere:author-detail"])
    def test_unknown_url_name(self, monkeypatch: pytest.MonkeyPatch, view_name: str) -> None:
        """A model_reverser naming no URL pattern (or namespace) is E013, naming the event."""
        event = Note.webhooks.events["on_create"]  # type: ignore[attr-defined]
        monkeypatch.setattr(event, "reverse", model_reverser(view_name, pk="pk"))
        output = check_output()
        assert "(thorn.E013)" in output
        assert f"testapp.Note.webhooks.on_create ('note.created') reverses '{view_name}'" in output

    def test_namespaced_url_name_passes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A namespaced URL name that exists passes."""
        event = Note.webhooks.events["on_create"]  # type: ignore[attr-defined]
        monkeypatch.setattr(event, "reverse", model_reverser("admin:index"))
        assert check_output() == ""


@pytest.mark.django_db
class TestSaveTimeErrors:
    """A save fails because of a webhook only when the event lets errors propagate."""

    def test_misconfigured_settings_do_not_fail_a_save(
        self, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With propagate_errors=False, invalid settings are logged and the note is saved."""
        monkeypatch.setattr(Note.webhooks.events["on_create"], "propagate_errors", False)  # type: ignore[attr-defined]
        settings.THORN_SUBSCRIBERS = {"*": 42}
        with caplog.at_level(logging.ERROR, logger="thorn_core.model_events"):
            note = Note.objects.create(text="saved")

        assert Note.objects.filter(pk=note.pk).exists()
        assert "THORN_SUBSCRIBERS" in caplog.text

    def test_misconfigured_settings_propagate_by_default(self, settings: Any) -> None:
        """With propagate_errors=True (the default) the save raises the configuration error."""
        settings.THORN_SUBSCRIBERS = {"*": 42}
        with pytest.raises(ImproperlyConfigured, match="THORN_SUBSCRIBERS"):
            Note.objects.create(text="not saved")

    def test_unknown_url_name_does_not_fail_a_save(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With propagate_errors=False, a reverser naming no URL is logged; the save stands."""
        event = Note.webhooks.events["on_create"]  # type: ignore[attr-defined]
        monkeypatch.setattr(event, "propagate_errors", False)
        monkeypatch.setattr(event, "reverse", model_reverser("no-such-view", pk="pk"))
        with caplog.at_level(logging.ERROR, logger="thorn_core.model_events"):
            note = Note.objects.create(text="saved")

        assert Note.objects.filter(pk=note.pk).exists()
        assert "NoReverseMatch" in caplog.text
