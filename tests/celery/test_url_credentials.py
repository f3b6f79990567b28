"""Credentials in subscriber URLs on the Celery dispatcher: Basic auth, masked retry log line."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import Event, Subscriber, Thorn
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

from ._celery_support import WAIT


class TestRetryLogLine:
    """The worker's log line about a retry names the URL with its credentials masked."""

    def test_retry_is_logged_masked_and_retries_authenticate(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Both attempts carry Basic auth; the retry line shows ``ada:***@`` and no password."""
        answers = iter([(503, b"busy")])

        def respond(_request: ReceivedWebhook) -> Reply:
            return next(answers, (200, b"ok"))

        receiver = make_receiver(respond)
        url = f"http://ada:hunter2@127.0.0.1:{receiver.port}/hook?token=t0k3n"
        make_thorn({"THORN_RETRY_BACKOFF_MAX": 0.5})
        Event("a.b", retry_delay=0.1, retry_max=3).send(
            {"n": 1}, subscribers=[Subscriber(url=url, event="a.*")]
        )
        with (
            caplog.at_level(logging.INFO, logger="thorn_core.dispatchers.celery"),
            run_worker(),
        ):
            first, second = receiver.wait_for(2, WAIT)
        expected = "Basic " + base64.b64encode(b"ada:hunter2").decode()
        assert first.headers["authorization"] == second.headers["authorization"] == expected
        (line,) = [r.getMessage() for r in caplog.records if "attempt 2" in r.getMessage()]
        assert f"to http://ada:***@127.0.0.1:{receiver.port}/hook?token=*** failed" in line
        assert "hunter2" not in caplog.text
        assert "t0k3n" not in caplog.text
