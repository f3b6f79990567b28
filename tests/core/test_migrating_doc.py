"""docs/migrating.md stays true: every test it links to exists, and every row of its table of
changed behaviour links to one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating.md"
#: ``tests/x/test_y.py::TestClass::test_name`` (a parametrized id's ``[...]`` is left out).
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)::(\w+)(?:\[[^\]`]*\])?`")


def linked_tests(text: str) -> list[tuple[str, str, str]]:
    """The (path, class, test) of every test id in ``text``."""
    return TEST_ID.findall(text)


def methods_of(path: Path) -> set[tuple[str, str]]:
    """The (class, method) pairs of the test classes of a module, read without importing it
    (the core suite runs without Django and Flask)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        (node.name, item.name)
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def behaviour_rows(text: str) -> list[str]:
    """The body rows of the table under "## Behaviour that changed"."""
    section = text.split("## Behaviour that changed", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row for row in rows[1:] if not row.startswith("| ---")]  # no header, no rule


class TestMigratingPage:
    """The migration guide's links to tests."""

    def test_the_page_links_tests(self) -> None:
        """The page names tests at all (the checks below are not vacuous)."""
        assert len(linked_tests(PAGE.read_text())) >= 20

    @pytest.mark.parametrize(
        ("path", "cls", "name"),
        linked_tests(PAGE.read_text()),
        ids=lambda value: str(value),
    )
    def test_linked_test_exists(self, path: str, cls: str, name: str) -> None:
        """Each linked test id names a test method of a class in that module."""
        module = ROOT / path
        assert module.is_file(), f"{path} does not exist"
        assert (cls, name) in methods_of(module), f"{path}::{cls}::{name} does not exist"

    def test_every_changed_behaviour_links_a_test(self) -> None:
        """Every row of the table of changed behaviour shows its test."""
        rows = behaviour_rows(PAGE.read_text())
        assert len(rows) >= 11
        unlinked = [row.split("|")[1].strip() for row in rows if not linked_tests(row)]
        assert unlinked == []

    def test_required_rows_are_there(self) -> None:
        """The behaviours users ask about each have a row."""
        subjects = " ".join(row.split("|")[1] for row in behaviour_rows(PAGE.read_text())).lower()
        for subject in (
            "sender",
            "which subscriptions",
            "bulk",
            "secret",
            "url names",
            "filters",
            "signal",
            "`ref`",
            "410",
            "loopback",
            "digest",
        ):
            assert subject in subjects, subject

    def test_a_missing_test_is_caught(self, tmp_path: Path) -> None:
        """The check finds a link to a test that does not exist."""
        module = tmp_path / "test_x.py"
        module.write_text("class TestA:\n    def test_b(self):\n        pass\n")
        assert methods_of(module) == {("TestA", "test_b")}
        (link,) = linked_tests("see `tests/core/test_x.py::TestA::test_c[1]`")
        assert link == ("tests/core/test_x.py", "TestA", "test_c")
        assert (link[1], link[2]) not in methods_of(module)
