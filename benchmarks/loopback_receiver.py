"""A fast keep-alive HTTP/1.1 receiver for benchmarks, run in its own process.

It answers every request with ``200 ok`` (after ``--delay`` seconds, for latency-bound
scenarios) and counts them; ``GET /count`` answers the count, so every run can check that
what was received equals what was sent. Run: ``python -m benchmarks.loopback_receiver``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Counter:
    """POSTs received so far."""

    def __init__(self) -> None:
        self.posts = 0


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: Counter, delay: float
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET /count"):
                body = str(counter.posts).encode()
            else:
                counter.posts += 1
                body = b"ok"
                if delay:
                    await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _serve(port: int, delay: float) -> None:
    counter = Counter()
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, counter, delay), "127.0.0.1", port, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class ReceiverProcess:
    """Start the receiver in a child process pinned to ``cpu`` (when the machine has it)."""

    def __init__(self, *, delay: float = 0.0, cpu: int | None = 1) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "benchmarks.loopback_receiver", "--delay", str(delay)]
            + (["--cpu", str(cpu)] if cpu is not None else []),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def count(self) -> int:
        """POSTs the receiver has answered."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=5) as r:
            return int(r.read())

    def wait_for(self, expected: int, timeout: float = 10.0) -> int:
        """Wait until ``expected`` POSTs arrived (they should already have); return the count."""
        deadline = time.monotonic() + timeout
        count = self.count()
        while count < expected and time.monotonic() < deadline:
            time.sleep(0.01)
            count = self.count()
        return count

    def stop(self) -> None:
        """Stop the child process."""
        self.proc.terminate()
        self.proc.wait(5)


def main() -> None:
    """Serve until killed; print the port first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None and args.cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(_serve(args.port, args.delay))


if __name__ == "__main__":
    main()
