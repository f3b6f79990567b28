"""Which endpoint-health store a Celery site gets: Redis when the broker is Redis, else
memory with a warning, unless THORN_HEALTH_URL names one."""

from __future__ import annotations

import logging

import pytest
from celery import Celery

from thorn_core import Thorn
from thorn_core.health import MemoryHealthStore
from thorn_core.health_redis import RedisHealthStore

REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def _app(broker: str, **settings: object) -> Thorn:
    capp = Celery("health-store-choice", broker=broker, set_as_current=False)
    return Thorn(
        {"THORN_DISPATCHER": "celery", "THORN_CELERY_APP": capp, **settings},
        set_as_current=False,
    )


class TestStoreChoice:
    """app.health for the celery dispatcher."""

    def test_redis_broker_shares_health(self) -> None:
        """A Redis broker's URL is the health store's: every worker shares it."""
        app = _app(REDIS)
        try:
            assert isinstance(app.health, RedisHealthStore)
            assert app.health.url == REDIS
        finally:
            app.close()

    def test_other_broker_warns_and_keeps_memory(self, caplog: pytest.LogCaptureFixture) -> None:
        """A RabbitMQ-only site gets per-process health and one warning saying so."""
        app = _app(AMQP)
        try:
            with caplog.at_level(logging.WARNING, logger="thorn_core.app"):
                assert isinstance(app.health, MemoryHealthStore)
                assert app.health is app.health  # built once, warned once
        finally:
            app.close()
        warnings = [r for r in caplog.records if "THORN_HEALTH_URL" in r.getMessage()]
        assert len(warnings) == 1

    def test_health_url_wins(self) -> None:
        """THORN_HEALTH_URL names the Redis even when the broker is RabbitMQ."""
        app = _app(AMQP, THORN_HEALTH_URL="redis://127.0.0.1:6379/3")
        try:
            assert isinstance(app.health, RedisHealthStore)
            assert app.health.url == "redis://127.0.0.1:6379/3"
        finally:
            app.close()

    def test_health_settings_change_rebuilds_the_store(self) -> None:
        """New breaker settings (as Django's setting_changed brings) give a new store."""
        app = _app(REDIS)
        try:
            before = app.health
            app.configure(
                {
                    "THORN_DISPATCHER": "celery",
                    "THORN_CELERY_APP": app.settings.celery_app,
                    "THORN_CIRCUIT_COOLOFF": 5,
                }
            )
            assert app.health is not before
            assert app.health.settings.circuit_cooloff == 5
        finally:
            app.close()
