"""The docs and the README stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

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
