"""Helpers of the endpoint-health tests: a real Redis, one key prefix per test."""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from typing import Any

import pytest

from thorn_core.settings import Settings

#: The Redis the project's machines run; tests that need it skip without it (fail on CI).
REDIS_URL = os.environ.get("THORN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_redis_package() -> None:
    """Skip the test when the redis package is not installed; fail instead on CI."""
    if importlib.util.find_spec("redis") is None:
        if IN_CI:
            pytest.fail("the redis package is missing on CI: the health tests must run")
        pytest.skip("the redis package is not installed")


def require_redis() -> None:
    """Skip the test when Redis (or its package) is missing; fail instead on CI (CI=true)."""
    require_redis_package()
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable on CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")


def settings(**values: Any) -> Settings:
    """Settings from ``THORN_*``-less names: ``settings(circuit_min_requests=4)``."""
    return Settings.from_mapping({f"THORN_{name.upper()}": v for name, v in values.items()})


def unique_prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"thorn-test:{uuid.uuid4().hex}:"


def drop_prefix(prefix: str) -> None:
    """Delete every key under ``prefix``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_store(config: Settings, prefix: str) -> Any:
    """A :class:`~thorn_core.health_redis.RedisHealthStore` on the test Redis under ``prefix``."""
    from thorn_core.health_redis import RedisHealthStore

    return RedisHealthStore(REDIS_URL, config, prefix=prefix)
