"""The Reliability page names, for each guarantee, tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reliability.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)::(\w+)`")


def defined_tests(path: Path) -> set[tuple[str, str]]:
    """Every (class, method) of a test module."""
    tree = ast.parse(path.read_text())
    return {
        (node.name, item.name)
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef)
    }


class TestGuaranteesAreProved:
    """Every test the page cites for a guarantee is a real test."""

    def test_every_cited_test_exists(self) -> None:
        """Each ``tests/...py::Class::test`` on the page names an existing test method."""
        cited = TEST_ID.findall(PAGE.read_text())
        assert len(cited) >= 12
        missing = [
            f"{path}::{cls}::{name}"
            for path, cls, name in cited
            if not (ROOT / path).is_file() or (cls, name) not in defined_tests(ROOT / path)
        ]
        assert missing == []

    def test_every_guarantee_cites_a_test(self) -> None:
        """Each row of the guarantees table names at least one test."""
        text = PAGE.read_text()
        table = text.split("| guarantee | proved by |", 1)[1].split("\n\n", 1)[0]
        rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
        assert rows
        assert [row for row in rows if not TEST_ID.search(row)] == []
