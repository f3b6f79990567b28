"""The ``thorn`` command line, run as a user runs it, against real receivers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from thorn_core import Event, Subscriber, Thorn
from thorn_core.cli import main
from thorn_core.receiver import ReceivedWebhook, WebhookReceiver
from thorn_core.signing import generate_secret, hook_hmac, standard_webhooks_headers

SECRET = "whsec_" + "ZGVtby1jcm0tc2VjcmV0LTAxMjM0NTY3ODk="
THORN = Path(sys.executable).with_name("thorn")
WAIT = 10.0


def run(*args: str, input: str | bytes | None = None) -> Result:
    """Run ``thorn ARGS`` in this process, as click's test runner does."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def assert_user_error(result: Result, exit_code: int, *words: str) -> None:
    """The command failed with ``exit_code``, an ``Error:`` line holding ``words``, no traceback."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], errors[0]


class Listener:
    """A ``thorn listen`` subprocess, its output read line by line in a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own console script
            [str(THORN), "listen", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        first = self.expect("Listening on ")
        self.url = first.split("Listening on ", 1)[1].strip()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = WAIT) -> str:
        """The next output line containing ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}; output: {self.output}") from None
            self.output.append(line)
            if text in line:
                return line

    def stop(self) -> int:
        """Interrupt the process as Ctrl+C does; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=WAIT)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()


@pytest.fixture
def listener() -> Iterator[Callable[..., Listener]]:
    """Start ``thorn listen`` processes on a free port; all stopped afterwards."""
    started: list[Listener] = []

    def start(*args: str) -> Listener:
        process = Listener(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout=WAIT)
        if process.process.stdout is not None:
            process.process.stdout.close()


def send(app: Thorn, url: str, data: Any, *, secret: str = SECRET) -> Any:
    """Send ``user.created`` with ``data`` to ``url`` and return its only delivery."""
    subscriber = Subscriber(url=url, hmac_secret=secret)
    result = Event("user.created", app=app).send(data, subscribers=[subscriber])
    assert len(result.deliveries) == 1
    return result.deliveries[0]


class TestHelp:
    """Every command explains itself."""

    @pytest.mark.parametrize("command", [[], ["demo"], ["listen"], ["send"], ["verify"]])
    def test_help(self, command: list[str]) -> None:
        """``--help`` prints usage and exits 0."""
        result = run(*command, "--help")

        assert result.exit_code == 0
        assert result.output.startswith("Usage: ")

    def test_version(self) -> None:
        """``--version`` names the program."""
        assert run("--version").output.startswith("thorn, version ")


class TestDemo:
    """``thorn demo``, the README's first command."""

    def test_demo_verifies_every_webhook(self) -> None:
        """The demo sends its events, and every webhook arrives with both signatures verified."""
        result = run("demo")

        assert result.exit_code == 0, result.output
        assert "5 events sent, 10 webhooks received, 10 with both signatures verified." in (
            result.output
        )


class TestSend:
    """``thorn send`` fires one signed webhook."""

    def test_sends_a_signed_webhook(self, receiver: WebhookReceiver) -> None:
        """The receiver gets the payload, with both signatures valid for the secret."""
        result = run(
            "send", "user.created", "--url", receiver.url("/in"), "--secret", SECRET,
            "--data", '{"id": 1, "name": "ada"}', "--allow-loopback",
        )  # fmt: skip

        assert result.exit_code == 0, result.output
        (webhook,) = receiver.wait_for(1)
        assert webhook.path == "/in"
        assert webhook.event == "user.created"
        assert webhook.json() == {"id": 1, "name": "ada"}
        assert webhook.hook_hmac_valid(SECRET)
        assert webhook.standard_webhook_valid(SECRET)
        assert f"user.created -> {receiver.url('/in')}: 200" in result.output
        assert webhook.delivery_id is not None
        assert webhook.delivery_id in result.output

    def test_password_in_url_is_masked(self, receiver: WebhookReceiver) -> None:
        """A password in --url authenticates the delivery but is printed as ``***``."""
        url = receiver.url("/in").replace("http://", "http://ada:s3cret@")

        result = run("send", "user.created", "--url", url, "--allow-loopback")

        assert result.exit_code == 0, result.output
        assert receiver.wait_for(1)[0].headers["authorization"].startswith("Basic ")
        assert "s3cret" not in result.output
        assert f"user.created -> {url.replace('s3cret', '***')}: 200" in result.output

    def test_loopback_is_refused_without_opt_in(self, receiver: WebhookReceiver) -> None:
        """Without --allow-loopback nothing is sent, and the error says how to opt in."""
        result = run("send", "user.created", "--url", receiver.url())

        assert_user_error(result, 1, "refused", "--allow-loopback")
        time.sleep(0.1)
        assert receiver.received == []

    def test_allow_network(self, receiver: WebhookReceiver) -> None:
        """--allow-network with a CIDR that holds the receiver opens it too."""
        result = run(
            "send", "order.paid", "--url", receiver.url(), "--allow-network", "127.0.0.0/8"
        )

        assert result.exit_code == 0, result.output
        assert receiver.wait_for(1)[0].event == "order.paid"

    def test_generated_secret_is_printed(self, receiver: WebhookReceiver) -> None:
        """Without --secret a new one signs the webhook and is printed for verifying."""
        result = run("send", "user.created", "--url", receiver.url(), "--allow-loopback")

        assert result.exit_code == 0, result.output
        secret = result.output.split("Signed with a new secret: ", 1)[1].split()[0]
        assert receiver.wait_for(1)[0].standard_webhook_valid(secret)

    def test_data_file_and_form(self, receiver: WebhookReceiver, tmp_path: Path) -> None:
        """--data-file reads the payload; --content-type sends it form-encoded."""
        path = tmp_path / "payload.json"
        path.write_text('{"id": 7, "tags": ["a", "b"]}')
        result = run(
            "send", "order.created", "--url", receiver.url(), "--data-file", str(path),
            "--content-type", "application/x-www-form-urlencoded", "--allow-loopback",
        )  # fmt: skip

        assert result.exit_code == 0, result.output
        (webhook,) = receiver.wait_for(1)
        assert webhook.headers["content-type"] == "application/x-www-form-urlencoded"
        assert webhook.body == b"id=7&tags=a&tags=b"

    def test_data_from_stdin(self, receiver: WebhookReceiver) -> None:
        """``--data-file -`` reads the payload from standard input."""
        result = run(
            "send", "user.created", "--url", receiver.url(), "--data-file", "-",
            "--allow-loopback", input='{"from": "stdin"}',
        )  # fmt: skip

        assert result.exit_code == 0, result.output
        assert receiver.wait_for(1)[0].json() == {"from": "stdin"}

    def test_failed_delivery_exits_1(self, make_receiver: Callable[..., WebhookReceiver]) -> None:
        """A receiver answering 500 makes the command fail with the status."""
        failing = make_receiver(lambda _request: (500, b"boom"))
        result = run("send", "user.created", "--url", failing.url(), "--allow-loopback")

        assert_user_error(result, 1, "answered 500")

    def test_closed_port(self, closed_port_url: str) -> None:
        """A connection error is reported in one line."""
        result = run("send", "user.created", "--url", closed_port_url, "--allow-loopback")

        assert_user_error(result, 1, "failed")

    @pytest.mark.parametrize(
        ("args", "words"),
        [
            (["user.created", "--data", "{nope"], ["--data", "not valid JSON"]),
            (["user.created", "--data", "{}", "--data-file", "-"], ["not both"]),
            (["user..created"], ["EVENT"]),
            (["user.created", "--url", "not a url"], ["--url"]),
            (["user.created", "--secret", "whsec_!!!"], ["--secret"]),
            (["user.created", "--allow-network", "10.0.0.0/33"], ["--allow-network"]),
        ],
        ids=["bad-json", "two-payloads", "bad-event", "bad-url", "bad-secret", "bad-cidr"],
    )
    def test_bad_input(self, args: list[str], words: list[str]) -> None:
        """Bad input exits 2 with a one-line reason and sends nothing."""
        if "--url" not in args:
            args = [*args, "--url", "http://127.0.0.1:9/"]
        result = run("send", *args)

        assert_user_error(result, 2, *words)


def captured(app: Thorn, receiver: WebhookReceiver, secret: str = SECRET) -> ReceivedWebhook:
    """A real delivery of ``user.created``, as the receiver captured it."""
    send(app, receiver.url("/hooks"), {"id": 1, "name": "ada"}, secret=secret)
    return receiver.wait_for(1)[0]


def write_capture(
    tmp_path: Path, headers: dict[str, str], body: bytes, *, as_json: bool = False
) -> tuple[str, str]:
    """Write headers (``Name: value`` lines after a request line, or JSON) and the body."""
    headers_file = tmp_path / "headers.txt"
    if as_json:
        headers_file.write_text(json.dumps(headers))
    else:
        lines = ["POST /hooks HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        headers_file.write_text("\r\n".join(lines) + "\r\n\r\n")
    body_file = tmp_path / "body.bin"
    body_file.write_bytes(body)
    return str(headers_file), str(body_file)


class TestVerify:
    """``thorn verify`` checks a captured delivery's signatures."""

    @pytest.mark.parametrize("as_json", [False, True], ids=["header-lines", "json"])
    def test_real_delivery_verifies(
        self, app: Thorn, receiver: WebhookReceiver, tmp_path: Path, as_json: bool
    ) -> None:
        """A delivery captured from a real receiver verifies: both signatures and the timestamp."""
        webhook = captured(app, receiver)
        headers, body = write_capture(
            tmp_path, dict(webhook.headers), webhook.body, as_json=as_json
        )

        result = run("verify", "--secret", SECRET, "--headers", headers, "--body", body)

        assert result.exit_code == 0, result.output
        assert "Hook-HMAC (sha256): valid" in result.output
        assert "Standard Webhooks signature: valid" in result.output
        assert "within the 300s tolerance" in result.output
        assert "OK" in result.output

    def test_tampered_body(self, app: Thorn, receiver: WebhookReceiver, tmp_path: Path) -> None:
        """A body changed after signing fails, exit 1 with the reason."""
        webhook = captured(app, receiver)
        headers, body = write_capture(tmp_path, dict(webhook.headers), webhook.body + b" ")

        result = run("verify", "--secret", SECRET, "--headers", headers, "--body", body)

        assert_user_error(result, 1, "does not match")
        assert "INVALID" in result.output

    def test_wrong_secret_and_rotation(
        self, app: Thorn, receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """Another secret fails; given both (rotation), the right one matches."""
        webhook = captured(app, receiver)
        headers, body = write_capture(tmp_path, dict(webhook.headers), webhook.body)
        other = generate_secret()

        wrong = run("verify", "--secret", other, "--headers", headers, "--body", body)
        both = run(
            "verify", "--secret", other, "--secret", SECRET, "--headers", headers, "--body", body
        )

        assert_user_error(wrong, 1)
        assert both.exit_code == 0, both.output

    def test_old_capture(self, tmp_path: Path) -> None:
        """An old timestamp fails the tolerance; --ignore-timestamp checks the signatures only."""
        body = b'{"id":1}'
        old = int(time.time()) - 3 * 3600
        headers = {
            "Hook-HMAC": hook_hmac("sha256", SECRET, body),
            **standard_webhooks_headers(SECRET, "msg_1", old, body),
        }
        headers_file, body_file = write_capture(tmp_path, headers, body)
        args = ["verify", "--secret", SECRET, "--headers", headers_file, "--body", body_file]

        strict = run(*args)
        lenient = run(*args, "--ignore-timestamp")

        assert_user_error(strict, 1, "3.0 h old", "--ignore-timestamp")
        assert lenient.exit_code == 0, lenient.output
        assert "not checked" in lenient.output

    def test_body_from_stdin(self, app: Thorn, receiver: WebhookReceiver, tmp_path: Path) -> None:
        """``--body -`` reads the body from standard input."""
        webhook = captured(app, receiver)
        headers, _ = write_capture(tmp_path, dict(webhook.headers), webhook.body)

        result = run(
            "verify", "--secret", SECRET, "--headers", headers, "--body", "-", input=webhook.body
        )

        assert result.exit_code == 0, result.output

    def test_no_signature_headers(self, tmp_path: Path) -> None:
        """Headers without any signature are an error, not a pass."""
        headers, body = write_capture(tmp_path, {"Content-Type": "application/json"}, b"{}")

        result = run("verify", "--secret", SECRET, "--headers", headers, "--body", body)

        assert_user_error(result, 1, "no signature")

    def test_bad_input(self, tmp_path: Path) -> None:
        """A malformed whsec_ secret, a missing file and a malformed header line exit 2."""
        headers, body = write_capture(tmp_path, {"webhook-signature": "v1,AAAA"}, b"{}")
        broken = tmp_path / "broken.txt"
        broken.write_text("webhook-id: 1\nthis is not a header\n")

        assert_user_error(
            run("verify", "--secret", "whsec_!!", "--headers", headers, "--body", body), 2
        )
        assert_user_error(
            run("verify", "--secret", SECRET, "--headers", "/nonexistent", "--body", body), 2
        )
        assert_user_error(
            run("verify", "--secret", SECRET, "--headers", str(broken), "--body", body),
            2,
            "line 2",
        )


class TestListen:
    """``thorn listen`` receives, prints, verifies and forwards, as a separate process."""

    def test_prints_verified_webhook(self, app: Thorn, listener: Callable[..., Listener]) -> None:
        """Event, delivery id, 'verified' and the pretty JSON payload are printed."""
        running = listener("--secret", SECRET, "--count", "1")

        delivery = send(app, running.url + "hooks", {"id": 1, "name": "ada"})

        assert delivery.ok
        assert delivery.status_code == 200
        header = running.expect("user.created")
        assert "POST /hooks" in header
        assert delivery.id in header
        assert "verified" in running.expect("signature:")
        running.expect('"name": "ada"')
        assert running.process.wait(timeout=WAIT) == 0

    def test_invalid_signature_is_refused(
        self, app: Thorn, listener: Callable[..., Listener]
    ) -> None:
        """A webhook signed with another secret is answered 401 and reported INVALID."""
        running = listener("--secret", SECRET)

        delivery = send(app, running.url, {"id": 1}, secret=generate_secret())

        assert delivery.status_code == 401
        assert "INVALID" in running.expect("signature:")
        assert running.stop() == 0
        assert "Stopped." in running.output[-1] or running.expect("Stopped.")

    def test_without_secret(self, app: Thorn, listener: Callable[..., Listener]) -> None:
        """Without --secret every webhook is accepted and shown as not checked."""
        running = listener()

        delivery = send(app, running.url, {"id": 1})

        assert delivery.ok
        assert "not checked" in running.expect("signature:")

    def test_forward(
        self,
        app: Thorn,
        listener: Callable[..., Listener],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """A verified webhook reaches the --forward URL unchanged; its answer goes back."""
        target = make_receiver(lambda _request: (202, b"accepted"))
        running = listener("--secret", SECRET, "--forward", target.url("/app/hooks"))

        delivery = send(app, running.url + "in", {"id": 1})

        assert delivery.status_code == 202
        (forwarded,) = target.wait_for(1)
        assert forwarded.path == "/app/hooks"
        assert forwarded.event == "user.created"
        assert forwarded.delivery_id == delivery.id
        assert forwarded.json() == {"id": 1}
        assert forwarded.hook_hmac_valid(SECRET)
        assert forwarded.standard_webhook_valid(SECRET)
        running.expect("forwarded to")

    def test_forward_password_is_masked(
        self,
        app: Thorn,
        listener: Callable[..., Listener],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """The --forward URL's password reaches the target but is printed as ``***``."""
        target = make_receiver()
        forward = target.url("/app").replace("http://", "http://ada:s3cret@")
        running = listener("--forward", forward)

        delivery = send(app, running.url, {"id": 1})

        assert delivery.ok
        assert target.wait_for(1)[0].headers["authorization"].startswith("Basic ")
        masked = forward.replace("s3cret", "***")
        assert running.expect("forwarded to") == f"  forwarded to {masked}: 200 OK"
        assert f"Forwarding webhooks to {masked}" in running.output
        assert not [line for line in running.output if "s3cret" in line]

    def test_forward_skips_invalid(
        self,
        app: Thorn,
        listener: Callable[..., Listener],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """A webhook that fails verification is not forwarded."""
        target = make_receiver()
        running = listener("--secret", SECRET, "--forward", target.url())

        delivery = send(app, running.url, {"id": 1}, secret=generate_secret())

        assert delivery.status_code == 401
        running.expect("answered 401")
        assert target.received == []

    def test_forward_target_down(
        self, app: Thorn, listener: Callable[..., Listener], closed_port_url: str
    ) -> None:
        """When the --forward URL cannot be reached, the sender gets 502."""
        running = listener("--forward", closed_port_url)

        delivery = send(app, running.url, {"id": 1})

        assert delivery.status_code == 502
        assert delivery.retryable
        running.expect("forwarding to")

    def test_port_in_use(self, receiver: WebhookReceiver) -> None:
        """A port that is taken is a one-line error, exit 1."""
        result = run("listen", "--port", str(receiver.port))

        assert_user_error(result, 1, "cannot listen", str(receiver.port))

    @pytest.mark.parametrize(
        ("args", "option"),
        [(["--secret", "whsec_!!"], "--secret"), (["--forward", "ftp://x/"], "--forward")],
    )
    def test_bad_options(self, args: list[str], option: str) -> None:
        """A malformed secret or forward URL exits 2 before listening."""
        assert_user_error(run("listen", *args), 2, option)
