"""An example Thorn dispatcher plugin that appends events to a JSON Lines file."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from thorn_core import SendResult, Thorn
from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.fanout import resolve_subscribers

__all__ = ["JSONLinesDispatcher"]


class JSONLinesDispatcher:
    """Writes one JSON line per event to ``$THORN_JSONL_PATH`` and sends nothing."""

    def __init__(self, app: Thorn) -> None:
        self.app = app
        self.path = os.environ.get("THORN_JSONL_PATH", "thorn-events.jsonl")
        self._lock = threading.Lock()

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Append each result's event, payload and matching subscriber URLs."""
        lines = []
        for result in results:
            message = result.message
            subscribers = resolve_subscribers(self.app, message)
            # Thorn's JSON codec knows datetimes, decimals and UUIDs and names what it cannot.
            data = json.loads(self.app.codecs[JSON_CONTENT_TYPE].encode(message.data))
            lines.append(
                json.dumps(
                    {
                        "id": message.id,
                        "event": message.event,
                        "data": data,
                        "subscribers": [s.url for s in subscribers],
                    }
                )
            )
            result.state = "queued"
        with self._lock, open(self.path, "a", encoding="utf-8") as file:
            file.writelines(line + "\n" for line in lines)

    def close(self) -> None:
        """Nothing to release: the file is opened per batch."""
