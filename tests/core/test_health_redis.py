"""The Redis health store against a real Redis: processes racing on one key, garbage in keys,
and Redis going away mid-delivery."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ._health_support import (
    REDIS_URL,
    drop_prefix,
    redis_store,
    require_redis,
    require_redis_package,
    settings,
    unique_prefix,
)

KEY = "http://racing.example:80"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test alone, deleted afterwards."""
    require_redis()
    found = unique_prefix()
    yield found
    drop_prefix(found)


def _race_tokens(prefix: str, rate: float, length: float, ready: Any, out: Any) -> None:
    """In a child process: once both are ready, ask for tokens as fast as possible for
    ``length`` seconds; report the grants."""
    store = redis_store(settings(), prefix)
    store.status(KEY)  # connected before the race starts
    ready.wait(timeout=60)
    granted = []
    until = time.time() + length
    while time.time() < until:
        now = time.time()
        if store.admit(KEY, rate_limit=rate, max_in_flight=None, now=now).allowed:
            granted.append(now)
        store.release(KEY)
    store.close()
    out.put(granted)


def _race_slots(prefix: str, tries: int, ready: Any, out: Any) -> None:
    """In a child process: once both are ready, take in-flight slots (never released)
    ``tries`` times; report the wins."""
    store = redis_store(settings(), prefix)
    store.status(KEY)
    ready.wait(timeout=60)
    won = sum(
        store.admit(KEY, rate_limit=None, max_in_flight=5, now=None).allowed for _ in range(tries)
    )
    store.close()
    out.put(won)


def _run(target: Any, *args: Any) -> list[Any]:
    """Run ``target`` in two spawned processes that start together; return what each put on
    the queue."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    ready = context.Barrier(2)
    processes = [context.Process(target=target, args=(*args, ready, out)) for _ in range(2)]
    for process in processes:
        process.start()
    results = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return results


class TestRacingProcesses:
    """Two processes on one key never get more than the key allows."""

    def test_tokens_are_never_over_granted(self, prefix: str) -> None:
        """Two processes hammering a 20/s bucket for 1.5 s get 20/s between them, 50 ms apart."""
        rate, length = 20.0, 1.5
        results = _run(_race_tokens, prefix, rate, length)
        grants = sorted(t for granted in results for t in granted)
        assert all(results), "both processes were granted tokens"
        assert len(grants) <= rate * length + 1
        assert len(grants) >= rate * length * 0.8  # the limit is reached, not starved
        gaps = [b - a for a, b in itertools.pairwise(grants)]
        assert min(gaps) >= 1 / rate - 0.002

    def test_in_flight_slots_are_never_over_granted(self, prefix: str) -> None:
        """Two processes asking 50 times each for slots of a cap of 5 win 5 between them."""
        assert sum(_run(_race_slots, prefix, 50)) == 5


class TestGarbage:
    """A key Thorn did not write is reset, not a crashed worker."""

    @pytest.mark.parametrize(
        "plant",
        [
            lambda client, key: client.set(key, "not a hash"),
            lambda client, key: client.hset(key, mapping={"state": "molten", "b0i": "1"}),
            lambda client, key: client.hset(
                key, mapping={"next_probe_at": "soon", "state": "open"}
            ),
            lambda client, key: client.set(key + ":f", "not a sorted set"),
        ],
        ids=["wrong-type", "bad-state", "bad-number", "bad-in-flight"],
    )
    def test_garbage_is_reset(self, prefix: str, plant: Any) -> None:
        """admit, record and status all work on a key holding garbage, which starts afresh."""
        store = redis_store(settings(), prefix)
        try:
            plant(store.client, store._key(KEY))
            assert store.status(KEY).state == "closed"
            assert store.admit(KEY, rate_limit=1.0, max_in_flight=1).allowed
            store.release(KEY)
            status = store.record(KEY, ok=False, duration=0.1)
            assert (status.state, status.requests, status.failures) == ("closed", 1, 1)
        finally:
            store.close()

    def test_garbage_streak_is_reset(self, prefix: str) -> None:
        """A subscriber's streak key holding garbage starts again at one."""
        store = redis_store(settings(), prefix)
        try:
            store.client.set(f"{prefix}s:sub", "garbage")
            assert store.record_streak("sub", ok=False) == 1
            store.client.hset(f"{prefix}s:sub", "n", "many")
            assert store.record_streak("sub", ok=False) == 1
        finally:
            store.close()


class TestLocalAdmission:
    """Unlimited deliveries to an endpoint just seen closed need no round trip."""

    def test_admitted_here_and_released_without_touching_leases(self, prefix: str) -> None:
        """A local admission takes no lease, so its release frees nobody else's slot."""
        store = redis_store(settings(), prefix)
        try:
            store.record(KEY, ok=True, duration=0.1)  # seen closed
            assert store.admit(KEY, rate_limit=None, max_in_flight=1).allowed  # a leased slot
            assert store.admit(KEY, rate_limit=None, max_in_flight=None).allowed  # local
            store.release(KEY)  # the local one's
            store.flush()
            refused = store.admit(KEY, rate_limit=None, max_in_flight=1)
            assert (refused.allowed, refused.reason) == (False, "max_in_flight")
        finally:
            store.close()


class TestQueuedRecords:
    """A fast success to an endpoint seen closed rides with the next round trip."""

    def test_counted_once_sent(self, prefix: str) -> None:
        """The second success is queued, and counted when the next call goes out."""
        store = redis_store(settings(), prefix)
        try:
            store.record(KEY, ok=True, duration=0.01)  # a round trip: seen closed
            assert store.record(KEY, ok=True, duration=0.01).requests == 0  # queued
            assert store.status(KEY).requests == 2
        finally:
            store.close()

    def test_slow_or_failed_attempts_are_never_queued(self, prefix: str) -> None:
        """A failure or a slow success answers with the store's real status at once."""
        store = redis_store(settings(slow_threshold=1), prefix)
        try:
            store.record(KEY, ok=True, duration=0.01)
            assert store.record(KEY, ok=False, duration=0.01).requests == 2
            assert store.record(KEY, ok=True, duration=1.5).slow_until is not None
        finally:
            store.close()

    def test_scripts_forgotten_by_redis_are_sent_again(self, prefix: str) -> None:
        """After Redis forgot its scripts (a restart), queued records still count."""
        store = redis_store(settings(), prefix)
        try:
            store.record(KEY, ok=True, duration=0.01)
            store.record(KEY, ok=True, duration=0.01)  # queued as EVALSHA
            store.client.script_flush()
            store.flush()
            assert store.status(KEY).requests == 2
        finally:
            store.close()

    def test_queued_success_does_not_close_a_half_open_circuit(self, prefix: str) -> None:
        """Only the probe decides: a late success of an earlier admission moves nothing."""
        store = redis_store(settings(circuit_min_requests=1), prefix)
        other = redis_store(settings(circuit_min_requests=1), prefix)
        try:
            store.record(KEY, ok=True, duration=0.01)  # this process saw it closed
            other.record(KEY, ok=False, duration=0.01)  # another opened it
            store.record(KEY, ok=True, duration=0.01)  # queued, passive
            store.flush()
            assert store.status(KEY).state == "open"
        finally:
            store.close()
            other.close()


class TestRedisDown:
    """Redis unreachable: the memory fallback answers, with one warning a minute."""

    def test_falls_back_to_memory_with_one_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        """Every call still answers (from memory) and the breaker still works; one warning."""
        require_redis_package()
        from thorn_core.health_redis import RedisHealthStore

        store = RedisHealthStore(
            "redis://127.0.0.1:1/0",
            settings(circuit_min_requests=2, circuit_cooloff=30),
            prefix=unique_prefix(),
        )
        with caplog.at_level(logging.WARNING, logger="thorn_core.health_redis"):
            for _ in range(2):
                assert store.admit(KEY, rate_limit=None, max_in_flight=None).allowed
                store.release(KEY)
                status = store.record(KEY, ok=False, duration=0.1)
            refused = store.admit(KEY, rate_limit=None, max_in_flight=None)
            store._down_until = 0.0  # as if a second passed: Redis is tried (and fails) again
            assert store.record_streak("sub", ok=False) == 1
        store.close()
        assert status.state == "open"
        assert refused.reason == "circuit_open"
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1

    def test_recovers_when_redis_answers_again(self, prefix: str) -> None:
        """Once Redis answers, the store uses it again (the fallback's state stays local)."""
        store = redis_store(settings(), prefix)
        try:
            store._down_until = time.monotonic() + 60  # as if Redis just failed
            store.record(KEY, ok=False, duration=0.1)
            assert store.fallback.status(KEY).requests == 1
            store._down_until = 0.0
            store.record(KEY, ok=False, duration=0.1)
            assert store.client.exists(store._key(KEY))
        finally:
            store.close()

    def test_store_url_is_shared_by_apps(self, prefix: str) -> None:
        """Two stores on one URL and prefix (two processes' apps) see one circuit."""
        config = settings(circuit_min_requests=2)
        first, second = redis_store(config, prefix), redis_store(config, prefix)
        try:
            first.record(KEY, ok=False, duration=0.1)
            status = second.record(KEY, ok=False, duration=0.1)
            assert (status.state, status.transition) == ("open", "opened")
            # first saw it closed a moment ago: it admits on its own for local_ttl at most,
            time.sleep(first.local_ttl)
            # then it sees the circuit the other opened.
            assert first.admit(KEY, rate_limit=None, max_in_flight=None).reason == "circuit_open"
            assert second.admit(KEY, rate_limit=None, max_in_flight=None).reason == "circuit_open"
        finally:
            first.close()
            second.close()


def test_redis_url_of_the_tests_is_loopback() -> None:
    """The tests send traffic only to 127.0.0.1."""
    assert "127.0.0.1" in REDIS_URL
