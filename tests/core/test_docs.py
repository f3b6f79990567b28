"""The docs and the README stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from thorn_core import Settings

ROOT = Path(__file__).resolve().parents[2]


class TestSettingsReference:
    """docs/settings.md lists every setting the Settings class knows, and no other."""

    def test_every_setting_is_documented(self) -> None:
        """Each THORN_* name of Settings has a row in docs/settings.md."""
        text = (ROOT / "docs" / "settings.md").read_text()
        documented = set(re.findall(r"^\| `(THORN_[A-Z_]+)` \|", text, flags=re.MULTILINE))
        assert documented == set(Settings.setting_names())

    def test_documented_defaults_match(self) -> None:
        """The default shown for each setting is the Settings default, in Python syntax."""
        text = (ROOT / "docs" / "settings.md").read_text()
        rows = dict(re.findall(r"^\| `(THORN_[A-Z_]+)` \| `([^`]*)` \|", text, flags=re.MULTILINE))
        defaults = Settings().as_mapping()
        shown = {name: repr(defaults[name]).replace("'", '"') for name in rows}
        assert shown == rows


class TestReadme:
    """The README's quick start is the command CI runs."""

    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run contains the README's test command verbatim."""
        readme = (ROOT / "README.md").read_text()
        commands = re.findall(r"```console\n(.+?)\n```", readme)
        test_command = next(c for c in commands if "pytest" in c)
        assert test_command in (ROOT / ".ci" / "run").read_text()


_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_RUNNABLE = "<!-- not-runnable"
#: Pages whose examples have a test module of their own.
_OWN_TESTS = {"model-events.md"}
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """Each ```python block of a page as (line number, code, runnable)."""
    blocks = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, match.group(1), not before.startswith(NOT_RUNNABLE)))
    return blocks


class TestExamples:
    """Every Python example in the README and docs runs, or is marked as not runnable."""

    @pytest.mark.parametrize(
        "page", [p for p in PAGES if p.name not in _OWN_TESTS], ids=lambda p: p.name
    )
    def test_page_examples_run(self, page: Path) -> None:
        """The page's runnable blocks execute in order in one namespace."""
        namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
        for line, code, runnable in python_blocks(page.read_text()):
            if not runnable:
                continue
            compiled = compile(code, f"{page.name}:{line}", "exec")
            try:
                exec(compiled, namespace)  # noqa: S102 - the documentation's own examples
            except Exception as exc:
                pytest.fail(f"the block at {page.name}:{line} failed: {exc!r}")
