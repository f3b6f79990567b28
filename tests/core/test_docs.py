"""The docs and the README stay true to the code."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from thorn_core import Settings

from .._page_projects import code_blocks

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def settings_reference() -> ModuleType:
    """tools/settings_reference.py, the generator of docs/settings.md, imported by path."""
    spec = importlib.util.spec_from_file_location(
        "settings_reference", ROOT / "tools" / "settings_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

    def test_page_is_generated_from_settings(self) -> None:
        """docs/settings.md is exactly what tools/settings_reference.py generates now."""
        generated = settings_reference().render()
        assert (ROOT / "docs" / "settings.md").read_text() == generated, (
            "docs/settings.md is out of date: run python tools/settings_reference.py --write"
        )

    def test_every_field_has_a_doc(self) -> None:
        """Each Settings field carries the metadata['doc'] the page is generated from."""
        undocumented = [a.name for a in attrs.fields(Settings) if not a.metadata.get("doc")]
        assert undocumented == []

    def test_check_mode_detects_a_stale_page(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``--check`` fails for a stale page and passes once ``--write`` has rewritten it."""
        module = settings_reference()
        monkeypatch.setattr(module, "PAGE", tmp_path / "settings.md")
        (tmp_path / "settings.md").write_text("# stale\n")

        assert module.main(["--check"]) == 1
        assert module.main(["--write"]) == 0
        assert module.main(["--check"]) == 0


class TestReadme:
    """The README's quick start is the command CI runs."""

    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run contains the README's test command verbatim."""
        readme = (ROOT / "README.md").read_text()
        commands = re.findall(r"```console\n(.+?)\n```", readme)
        test_command = next(c for c in commands if "pytest" in c)
        assert test_command in (ROOT / ".ci" / "run").read_text()


#: Fences that hold data or shell sessions rather than a program (shown, not executed).
NOT_CODE = {"", "console", "bash", "sh", "shell", "text", "json", "toml", "http", "ini", "yaml"}
#: Pages whose examples have a test module of their own.
_OWN_TESTS = {"model-events.md"}
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Pages with an example project (``<!-- project-file: ... -->`` blocks), and the test
#: module that writes it and runs its commands (``tests/_page_projects.py``).
PROJECT_TESTS = {
    "django.md": "tests/django/test_getting_started.py",
    "flask.md": "tests/flask/test_getting_started.py",
}


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """Each ```python block of a page as (line number, code, runs in the page's namespace)."""
    return [
        (b.line, b.code, not b.not_runnable and b.pytest_file is None and not b.in_project)
        for b in code_blocks(text)
        if b.language == "python"
    ]


#: Pages whose examples need a framework, and which one.
_NEEDS = {"celery.md": "celery", "django.md": "django", "flask.md": "flask"}


class TestExamples:
    """Every Python example in the README and docs runs, or is marked as not runnable."""

    @pytest.mark.parametrize(
        "page", [p for p in PAGES if p.name not in _OWN_TESTS], ids=lambda p: p.name
    )
    def test_page_examples_run(self, page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The page's runnable blocks execute in order in one namespace.

        The namespace is a module registered in ``sys.modules`` for the run, as a user's
        module would be, so that libraries which look names up by module (SQLAlchemy's
        ``Mapped[...]``, dataclasses, pickling) work as they do in a program.
        """
        framework = _NEEDS.get(page.name)
        if framework is not None:
            # The core session runs without frameworks; the full suite has them all.
            pytest.importorskip(framework, reason=f"{page.name} needs {framework}")
        module = ModuleType(f"docs_{page.stem.replace('-', '_')}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        namespace: dict[str, Any] = module.__dict__
        for line, code, runnable in python_blocks(page.read_text()):
            if not runnable:
                continue
            compiled = compile(code, f"{page.name}:{line}", "exec")
            try:
                exec(compiled, namespace)  # noqa: S102 - the documentation's own examples
            except Exception as exc:
                pytest.fail(f"the block at {page.name}:{line} failed: {exc!r}")


class TestCodeBlocks:
    """Every code block in the docs is executed by a test or marked as not runnable."""

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
    def test_foreign_code_is_marked(self, page: Path) -> None:
        """A program in another language (Node, Go, Ruby, ...) carries a not-runnable marker."""
        unmarked = [
            f"{page.name}:{b.line} ({b.language})"
            for b in code_blocks(page.read_text())
            if b.language not in NOT_CODE | {"python"} and not b.not_runnable
        ]
        assert unmarked == []

    def test_markers_are_recognised(self) -> None:
        """The extraction tells runnable, not-runnable and pytest-file blocks apart."""
        text = (
            "```python\nx = 1\n```\n\n<!-- not-runnable: needs Django -->\n```python\nx\n```\n"
            "\n<!-- pytest-file: test_x.py -->\n```python\ndef test_x(): pass\n```\n"
        )
        assert [runnable for _, _, runnable in python_blocks(text)] == [True, False, False]
        assert [b.pytest_file for b in code_blocks(text)] == [None, None, "test_x.py"]

    def test_project_blocks_are_not_run_in_the_page(self) -> None:
        """Files, commands and typed input of a page's project are left to its own test."""
        text = (
            "<!-- project-file: app.py -->\n```python\nimport app\n```\n"
            "<!-- project-run: quickstart -->\n```console\n$ python manage.py shell\n```\n"
            "<!-- project-input: quickstart -->\n```python\nx\n```\n"
        )
        assert [b.in_project for b in code_blocks(text)] == [True, True, True]
        assert [runnable for _, _, runnable in python_blocks(text)] == [False, False]

    def test_project_pages_have_their_test(self) -> None:
        """Each page with an example project has the test module that runs it, and only those."""
        with_projects = {
            page.name for page in PAGES if any(b.in_project for b in code_blocks(page.read_text()))
        }
        assert with_projects == set(PROJECT_TESTS)
        for page, module in PROJECT_TESTS.items():
            assert f'"{page}"' in (ROOT / module).read_text()


PYTEST_PAGES = [p for p in PAGES if any(b.pytest_file for b in code_blocks(p.read_text()))]


class TestPytestExamples:
    """Pages with example test files (the testing guide) pass when pytest runs them."""

    def test_some_page_has_pytest_examples(self) -> None:
        """The testing guide's examples are found, so the test below is not vacuous."""
        assert "testing.md" in [p.name for p in PYTEST_PAGES]

    @pytest.mark.parametrize("page", PYTEST_PAGES, ids=lambda p: p.name)
    def test_pytest_examples_pass(self, page: Path, pytester: pytest.Pytester) -> None:
        """The page's files, written into a fresh project, pass under pytest as a user runs it."""
        files = {b.pytest_file: b.code for b in code_blocks(page.read_text()) if b.pytest_file}
        for name, code in files.items():
            assert name is not None
            (pytester.path / name).write_text(code)
        pytester.makeini("[pytest]\nfilterwarnings = error\naddopts = -p no:cacheprovider\n")

        result = pytester.runpytest("-p", "no:django")  # see test_pytest_plugin.run

        outcomes = result.parseoutcomes()
        assert result.ret == 0, result.stdout.str()
        assert outcomes.get("passed", 0) >= sum(c.count("\ndef test_") for c in files.values())
