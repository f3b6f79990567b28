"""The ``disabled`` dispatcher: accepts every event and sends nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import Thorn
    from ..results import SendResult

__all__ = ["DisabledDispatcher"]


class DisabledDispatcher:
    """Sends nothing: for tests, maintenance windows, and environments without receivers."""

    def __init__(self, app: Thorn) -> None:
        self.app = app

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Mark every result ``disabled``; no subscriber is looked up and no request is made."""
        for result in results:
            result.state = "disabled"

    def close(self) -> None:
        """Nothing to release."""
