"""Thorn's pytest plugin, exercised by running test files as a user's project would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

INI = "[pytest]\nfilterwarnings = error\naddopts = -p no:cacheprovider\n"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project directory with warnings as errors."""
    pytester.makeini(INI)
    return pytester


def run(project: pytest.Pytester, source: str, **outcomes: int) -> pytest.RunResult:
    """Write ``source`` as a test module, run pytest on it, and check the outcome counts."""
    project.makepyfile(test_user=textwrap.dedent(source))
    # The inner session runs in this process: keep pytest-django (configured by the outer
    # run when tests/django is collected too) out of it.
    result = project.runpytest("-p", "no:django")
    result.assert_outcomes(**outcomes)
    return result


class TestOptIn:
    """The plugin is installed for every project and does nothing until a fixture is used."""

    def test_registered_through_entry_point(self, project: pytest.Pytester) -> None:
        """pytest loads the plugin under the name ``thorn`` without any configuration."""
        run(
            project,
            """
            def test_loaded(request):
                assert request.config.pluginmanager.has_plugin("thorn")
            """,
            passed=1,
        )

    def test_unused_fixtures_change_nothing(self, project: pytest.Pytester) -> None:
        """A test that asks for no Thorn fixture sees no app built and no fixture active."""
        project.makepyfile(
            test_plain="""
            import thorn_core.app

            def test_plain(request):
                assert thorn_core.app._current is None
                assert not {"thorn_app", "captured_events", "webhook_receiver"} & set(
                    request.fixturenames
                )
            """
        )
        result = project.runpytest_subprocess()
        result.assert_outcomes(passed=1)

    def test_disable_with_p_no(self, project: pytest.Pytester) -> None:
        """``-p no:thorn`` turns the plugin off; its fixtures are then unknown."""
        project.makepyfile(test_user="def test_app(thorn_app):\n    pass\n")
        result = project.runpytest("-p", "no:thorn", "-p", "no:django")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*fixture 'thorn_app' not found*"])

    def test_import_imports_no_framework(self) -> None:
        """Importing the plugin module imports no web framework, no Celery and not requests."""
        code = (
            "import sys, thorn_core.pytest_plugin\n"
            "bad = {'flask', 'django', 'celery', 'sqlalchemy', 'requests'}\n"
            "print(sorted(bad & {m.partition('.')[0] for m in sys.modules}))"
        )
        output = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        assert output.strip() == "[]"


class TestThornApp:
    """``thorn_app`` is an isolated, current app for one test."""

    def test_current_during_the_test_only(self, project: pytest.Pytester) -> None:
        """The app is current inside the test; the one before is current again afterwards."""
        run(
            project,
            """
            import thorn_core
            from thorn_core import Event

            before = thorn_core.Thorn({}, set_as_current=True)

            def test_uses_app(thorn_app):
                assert thorn_core.current_app() is thorn_app
                assert Event("user.created").app is thorn_app

            def test_after():
                assert thorn_core.current_app() is before
            """,
            passed=2,
        )

    def test_settings_fixture_overrides(self, project: pytest.Pytester) -> None:
        """Overriding ``thorn_settings`` in a conftest configures the app."""
        project.makeconftest(
            """
            import pytest

            @pytest.fixture
            def thorn_settings():
                return {"THORN_EVENT_TIMEOUT": 1.5, "THORN_DISPATCHER": "disabled"}
            """
        )
        run(
            project,
            """
            def test_settings(thorn_app):
                assert thorn_app.settings.event_timeout == 1.5
                assert thorn_app.settings.dispatcher == "disabled"
            """,
            passed=1,
        )


class TestWebhookReceiver:
    """``webhook_receiver`` receives real webhooks on 127.0.0.1 and verifies them."""

    def test_receives_and_verifies(self, project: pytest.Pytester) -> None:
        """A subscribed receiver gets the event, verified, with its payload parsed."""
        run(
            project,
            """
            from thorn_core import Event

            def test_signup(thorn_app, webhook_receiver):
                webhook_receiver.subscribe(thorn_app, "user.*")

                Event("user.created").send({"id": 1})

                (delivery,) = webhook_receiver.assert_received("user.created")
                assert delivery.verified
                assert delivery.payload == {"id": 1}
                assert delivery.path == "/hooks"
            """,
            passed=1,
        )

    def test_wrong_secret_fails(self, project: pytest.Pytester) -> None:
        """A webhook signed with another secret is answered 401 and fails the assertion."""
        result = run(
            project,
            """
            from thorn_core import Event, Subscriber

            def test_wrong_secret(thorn_app, webhook_receiver):
                wrong = Subscriber(url=webhook_receiver.url(), hmac_secret="not-the-secret")
                result = Event("user.created").send({}, subscribers=[wrong])
                assert result.deliveries[0].status_code == 401
                webhook_receiver.assert_received()
            """,
            failed=1,
        )
        result.stdout.fnmatch_lines(["*a webhook failed verification*"])

    def test_missing_webhook_fails_fast(self, project: pytest.Pytester) -> None:
        """Waiting for a webhook that never comes fails after the timeout with what did come."""
        result = run(
            project,
            """
            def test_nothing(webhook_receiver):
                webhook_receiver.assert_received("user.created", timeout=0.2)
            """,
            failed=1,
        )
        result.stdout.fnmatch_lines(["*expected 1 'user.created' webhooks within 0.2s, got 0*"])


class TestCapturedEvents:
    """``captured_events`` records what would be sent and makes no HTTP request."""

    def test_records_without_http(self, project: pytest.Pytester) -> None:
        """Events are captured; a subscribed receiver gets nothing."""
        run(
            project,
            """
            from thorn_core import Event

            def test_capture(thorn_app, captured_events, webhook_receiver):
                webhook_receiver.subscribe(thorn_app)

                result = Event("order.paid").send({"id": 42}, sender=7)

                captured_events.assert_sent("order.paid", data={"id": 42}, sender=7)
                captured_events.assert_sent("order.*", count=1)
                captured_events.assert_not_sent("user.*")
                assert captured_events.names == ["order.paid"]
                assert result.deliveries == []
                assert result.state == "queued"
                assert webhook_receiver.received == []
            """,
            passed=1,
        )

    def test_failure_lists_what_was_sent(self, project: pytest.Pytester) -> None:
        """A failed assertion names the events that were sent instead."""
        result = run(
            project,
            """
            from thorn_core import Event

            def test_wrong(captured_events):
                Event("user.created").send({"id": 1})
                captured_events.assert_sent("user.deleted")
            """,
            failed=1,
        )
        result.stdout.fnmatch_lines(["*no event user.deleted was sent; sent: user.created*"])

    def test_requests_are_signed(self, project: pytest.Pytester) -> None:
        """A captured event shows the signed requests its subscribers would have received."""
        run(
            project,
            """
            from thorn_core import Event
            from thorn_core.signing import verify_standard_webhook

            def test_requests(thorn_app, captured_events, webhook_receiver):
                subscriber = webhook_receiver.subscribe(thorn_app, "user.*")
                Event("user.created").send({"id": 1})

                event = captured_events.assert_sent("user.created")
                (request,) = event.requests
                assert event.urls == [subscriber.url]
                assert request.body == b'{"id":1}'
                verify_standard_webhook(webhook_receiver.secret, request.headers, request.body)
                assert webhook_receiver.received == []
            """,
            passed=1,
        )

    def test_bad_payload_still_raises(self, project: pytest.Pytester) -> None:
        """A payload that cannot be encoded raises at send(), as with a real dispatcher."""
        run(
            project,
            """
            import pytest
            from thorn_core import Event, SerializationError

            def test_bad(captured_events):
                with pytest.raises(SerializationError):
                    Event("user.created").send({"when": object()})
                captured_events.assert_nothing_sent()
            """,
            passed=1,
        )

    def test_own_app_is_restored(self, project: pytest.Pytester) -> None:
        """Overriding ``thorn_app`` captures from the project's app, whose dispatcher comes back."""
        project.makeconftest(
            """
            import pytest
            from thorn_core import Thorn

            APP = Thorn({"THORN_DISPATCHER": "disabled"}, set_as_current=False)

            @pytest.fixture
            def thorn_app():
                return APP
            """
        )
        run(
            project,
            """
            from conftest import APP
            from thorn_core import buffer_events

            def test_captures(captured_events):
                with buffer_events(app=APP):
                    APP.event("user.created").send({"id": 1})
                    captured_events.assert_nothing_sent()
                captured_events.assert_sent("user.created")

            def test_restored():
                assert APP.settings.dispatcher == "disabled"
            """,
            passed=2,
        )
