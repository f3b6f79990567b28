"""Configuration errors surface when the app is built, never at the first delivery."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from thorn_core import Event, ImproperlyConfigured, Thorn
from thorn_core.log import MemoryDeliveryLog
from thorn_core.receiver import WebhookReceiver


class NeedsAPath(MemoryDeliveryLog):
    """A delivery log that cannot be made without arguments."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class TestDeliveryLogSetting:
    """``THORN_DELIVERY_LOG`` as an object, a class, or a path."""

    def test_a_class_is_instantiated(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """A class given as is becomes an instance, and records the deliveries."""
        app = make_app(
            {
                "THORN_DELIVERY_LOG": MemoryDeliveryLog,
                "THORN_SUBSCRIBERS": {"*": receiver.url("/hook")},
            }
        )
        assert isinstance(app.delivery_log, MemoryDeliveryLog)

        delivery = Event("order.paid", app=app).send({}).deliveries[0]
        assert delivery.ok
        assert app.delivery_log.latest(delivery.id) is not None

    def test_a_class_that_needs_arguments_is_refused(self) -> None:
        """A class that cannot be made without arguments is refused, saying what to give."""
        with pytest.raises(ImproperlyConfigured, match=r"NeedsAPath cannot be created.*instance"):
            Thorn({"THORN_DELIVERY_LOG": NeedsAPath}, set_as_current=False)

    def test_a_bad_path_names_itself(self) -> None:
        """A dotted path that imports nothing is refused when the app is built."""
        with pytest.raises(ImproperlyConfigured, match=r"THORN_DELIVERY_LOG 'no_such\.mod:Log'"):
            Thorn({"THORN_DELIVERY_LOG": "no_such.mod:Log"}, set_as_current=False)

    def test_an_object_that_is_no_log(self) -> None:
        """An object without the log's methods is refused."""
        with pytest.raises(ImproperlyConfigured, match="is not a delivery log"):
            Thorn({"THORN_DELIVERY_LOG": object()}, set_as_current=False)
