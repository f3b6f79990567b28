"""docs/model-events.md: every Python block runs, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "model-events.md"
NOT_RUNNABLE = "<!-- not-runnable -->"

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """Each ```python block as (line number, code, runnable)."""
    blocks = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, match.group(1), before != NOT_RUNNABLE))
    return blocks


class TestModelEventsPage:
    """The Model Events page of the user guide is executable."""

    def test_page_has_examples(self) -> None:
        """The page has runnable Python examples (the extraction finds them)."""
        runnable = [b for b in python_blocks(PAGE.read_text()) if b[2]]
        assert len(runnable) >= 15

    def test_not_runnable_marker_is_detected(self) -> None:
        """A block preceded by the marker comment is reported as not runnable."""
        text = f"{NOT_RUNNABLE}\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n"
        assert [runnable for _, _, runnable in python_blocks(text)] == [False, True]

    def test_examples_run_in_order(self) -> None:
        """Every runnable block executes without error, sharing one namespace."""
        namespace: dict[str, Any] = {"__name__": "model_events_page"}
        try:
            for line, code, runnable in python_blocks(PAGE.read_text()):
                if not runnable:
                    continue
                compiled = compile(code, f"{PAGE.name}:{line}", "exec")
                try:
                    exec(compiled, namespace)  # noqa: S102 -- the documentation's own examples
                except Exception as exc:
                    pytest.fail(f"the block at {PAGE.name}:{line} failed: {exc!r}")
        finally:
            receiver = namespace.get("receiver")
            if receiver is not None:
                receiver.stop()
