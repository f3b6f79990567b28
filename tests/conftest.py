"""Fixtures shared by every test package: the current Thorn app is saved and restored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import thorn_core.app


@pytest.fixture(autouse=True)
def _restore_current_app() -> Iterator[None]:
    """Keep each test's current app (``thorn_core.app._current``) from leaking into the next."""
    saved = thorn_core.app._current
    try:
        yield
    finally:
        thorn_core.app._current = saved
