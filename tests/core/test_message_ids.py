"""Message ids: valid UUIDs, never repeated within a process, across threads or after fork."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Callable

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


def _ids_in_child(fork: Callable[[], int], event: Event) -> list[str]:
    """Three ids made by a child process started with ``fork``."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads; this child only
        # makes ids and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write_end, " ".join(event.prepare({}).id for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        ids = pipe.read().split()
    os.waitpid(pid, 0)
    assert len(ids) == 3
    return ids


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available here")
def test_forked_child_makes_other_ids(event: Event) -> None:
    """A child forked through Python (a prefork worker) makes ids of its own."""
    child_ids = _ids_in_child(os.fork, event)
    parent_ids = [event.prepare({}).id for _ in range(3)]
    assert not set(child_ids) & set(parent_ids)
    assert {i[:24] for i in parent_ids}.isdisjoint(i[:24] for i in child_ids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks through glibc")
def test_child_forked_without_python_hooks_makes_other_ids(event: Event) -> None:
    """A child forked from C, without Python's fork hooks (uWSGI's default prefork), still
    makes ids of its own: it has another pid."""
    libc = ctypes.CDLL(None, use_errno=True)
    child_ids = _ids_in_child(libc.fork, event)
    parent_ids = [event.prepare({}).id for _ in range(3)]
    assert not set(child_ids) & set(parent_ids)
    assert {i[:24] for i in parent_ids}.isdisjoint(i[:24] for i in child_ids)


def test_reseed_after_a_snapshot_restore(event: Event) -> None:
    """reseed_ids() (for processes restored from a memory snapshot) starts a new prefix."""
    from thorn_core.message import reseed_ids

    before = event.prepare({}).id
    reseed_ids()
    after = event.prepare({}).id
    assert before[:24] != after[:24]


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
