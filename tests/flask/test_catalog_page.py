"""docs/catalog.md is the example app's event catalog, generated and up to date."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def catalog_page() -> ModuleType:
    """tools/catalog_page.py, the generator of docs/catalog.md, imported by path."""
    spec = importlib.util.spec_from_file_location(
        "catalog_page", ROOT / "tools" / "catalog_page.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:THORN_SECRET_KEYS is not set")
class TestCatalogPage:
    """The generated page of the docs site."""

    def test_page_is_up_to_date(self) -> None:
        """``tools/catalog_page.py --check`` passes: docs/catalog.md is what it generates now
        (in a process of its own, where no other models declare the example's events)."""
        done = subprocess.run(  # noqa: S603 - this interpreter, our own script
            [sys.executable, str(ROOT / "tools" / "catalog_page.py"), "--check"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_page_lists_the_example_events(self) -> None:
        """Both model events of the example are on the page, with schema and example."""
        text = (ROOT / "docs" / "catalog.md").read_text()

        assert "| [`article.created`](#articlecreated-v1) | 1 |" in text
        assert "## article.published v1" in text
        assert '"state": "PUBLISHED"' in text

    def test_check_mode_detects_a_stale_page(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--check`` fails on a stale page and passes once ``--write`` rewrote it."""
        module = catalog_page()
        monkeypatch.setattr(module, "PAGE", tmp_path / "catalog.md")
        (tmp_path / "catalog.md").write_text("stale")

        assert module.main(["--check"]) == 1
        assert "out of date" in capsys.readouterr().out
        assert module.main(["--write"]) == 0
        assert module.main(["--check"]) == 0
