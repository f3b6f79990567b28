"""Message ids: valid UUIDs, never repeated within a process, across threads or after fork."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
import warnings

import pytest

from thorn_core import Event, Thorn


@pytest.fixture
def event() -> Event:
    app = Thorn({"THORN_DISPATCHER": "disabled"}, set_as_current=False)
    return Event("user.created", app=app)


def test_ids_are_version_8_uuids(event: Event) -> None:
    """An id parses as an RFC 9562 UUID of version 8 and prints back unchanged."""
    message_id = event.send({}).message.id
    parsed = uuid.UUID(message_id)
    assert parsed.version == 8
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == message_id


def test_ids_do_not_repeat_across_threads(event: Event) -> None:
    """Eight threads making 5,000 messages each never make the same id twice."""
    found: list[list[str]] = []

    def make() -> None:
        found.append([event.prepare({}).id for _ in range(5000)])

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [message_id for batch in found for message_id in batch]
    assert len(ids) == 40000
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available here")
def test_forked_child_makes_other_ids(event: Event) -> None:
    """A forked child (a prefork worker, a forking server) draws a new prefix and counter,
    so its ids differ from the parent's next ones."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads; this child only
        # makes ids and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            ids = " ".join(event.prepare({}).id for _ in range(3))
            os.write(write_end, ids.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_ids = pipe.read().split()
    os.waitpid(pid, 0)
    parent_ids = [event.prepare({}).id for _ in range(3)]
    assert len(child_ids) == 3
    assert not set(child_ids) & set(parent_ids)
    # The parent keeps counting from where it was; the child starts elsewhere.
    assert {i[:24] for i in parent_ids} != {i[:24] for i in child_ids}


def test_ids_differ_between_processes() -> None:
    """Two fresh interpreters start from different random prefixes."""
    script = "from thorn_core._ids import new_id; print(new_id())"
    first, second = (
        subprocess.run(  # noqa: S603 -- this interpreter, a fixed script
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout.strip()
        for _ in range(2)
    )
    assert uuid.UUID(first).version == 8
    assert first[:24] != second[:24]
