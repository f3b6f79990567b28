"""The ``thorn`` command line: ``demo``, ``listen``, ``send``, ``endpoints`` and ``verify``.

Its parameter types (:data:`SUBSCRIBER_ID`, :data:`ISO_TIME`, :data:`EVENT_NAME`,
:data:`SECONDS`, :data:`TOLERANCE`, :data:`LIMIT`) check values at parse time with the core's
messages; ``flask thorn`` uses them, and ``manage.py thorn_*`` wraps the same ``parse_*``
functions as argparse types.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

import click

from ._version import __version__
from .receiver import ReceivedWebhook, Reply, WebhookReceiver
from .validators import display_url

if TYPE_CHECKING:
    from .app import Thorn

    # Generic from click 8.2 on; the base classes below are built at run time from the plain
    # name, which every supported click has.
    _ParamType = click.ParamType[Any, Any]
else:
    _ParamType = click.ParamType

__all__ = [
    "ENDPOINT",
    "EVENT_NAME",
    "ISO_TIME",
    "JSON_VALUE",
    "LIMIT",
    "MAX_LIMIT",
    "MAX_SECONDS",
    "SECONDS",
    "SUBSCRIBER_ID",
    "TOLERANCE",
    "endpoints_output",
    "load_app",
    "main",
    "parse_endpoint",
    "parse_event_name",
    "parse_json",
    "parse_limit",
    "parse_seconds",
    "parse_subscriber_id",
    "parse_time",
    "parse_tolerance",
    "read_text",
]

# ---------------------------------------------------------------------------
# Parameter types shared by the command lines (``thorn`` and ``flask thorn``)
# ---------------------------------------------------------------------------


#: The longest duration an option takes (``--timeout``, ``--interval``), in seconds: a day.
MAX_SECONDS = 86400.0
#: The most events a relay claims in one batch (``--limit``).
MAX_LIMIT = 10_000


def parse_subscriber_id(value: object) -> uuid.UUID:
    """``value`` as a subscriber id (a UUID in any form :class:`uuid.UUID` reads).

    Raises:
        ValueError: it is not one.
    """
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a subscriber id (a UUID)") from None


def _number(value: object) -> float:
    """``value`` as a float; NaN when it is not a number (every range check refuses NaN)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def parse_seconds(value: object) -> float:
    """``value`` as a duration: seconds above 0 and at most :data:`MAX_SECONDS` (a day), as
    ``--timeout`` and ``--interval`` take.

    Raises:
        ValueError: it is not such a number (``nan`` and ``inf`` are not).
    """
    seconds = _number(value)
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(
            f"{value!r} is not a number of seconds above 0 and at most {MAX_SECONDS:g}"
        )
    return seconds


def parse_tolerance(value: object) -> float:
    """``value`` as the seconds a timestamp may be off: 0 or more, finite.

    Raises:
        ValueError: it is not such a number (``nan`` and ``inf`` are not).
    """
    seconds = _number(value)
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{value!r} is not a number of seconds, 0 or more")
    return seconds


def parse_json(text: str) -> Any:
    """``text`` as a JSON document (a payload given on the command line or in a file).

    Raises:
        ValueError: it is not valid JSON, or nests too deeply to read.
    """
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("not valid JSON: it nests too deeply") from None


def parse_limit(value: object) -> int:
    """``value`` as the events a relay claims per batch: a whole number from 1 to
    :data:`MAX_LIMIT`.

    Raises:
        ValueError: it is not such a number.
    """
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_LIMIT:
        raise ValueError(f"{value!r} is not a whole number from 1 to {MAX_LIMIT}")
    return number


class _Parsed(_ParamType):
    """A parameter type that converts with a function whose ValueError is the usage error."""

    def __init__(self, name: str, parse: Callable[[Any], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """``parse(value)``; its ValueError message as the usage error."""
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def parse_time(value: object) -> datetime.datetime:
    """``value`` as an aware datetime: an ISO 8601 date or time (UTC without an offset), as
    ``--since`` and ``--before`` take.

    Raises:
        ValueError: it is neither.
    """
    from .log import parse_since

    if isinstance(value, datetime.datetime):
        return value
    return parse_since(str(value))


def parse_event_name(value: object) -> str:
    """``value`` if it is a valid event name (``user.created``: no wildcard).

    Raises:
        InvalidEventName: a ValueError that says why it is not.
    """
    from .patterns import validate_event_name

    return validate_event_name(value)


#: A subscriber id argument or option (converted to :class:`uuid.UUID`).
SUBSCRIBER_ID = _Parsed("uuid", parse_subscriber_id)
#: An ISO 8601 date or time argument or option (converted to an aware datetime).
ISO_TIME = _Parsed("iso-time", parse_time)
#: An event name argument or option.
EVENT_NAME = _Parsed("event", parse_event_name)
#: A JSON document option (``--filter``).
JSON_VALUE = _Parsed("json", parse_json)
#: A duration in seconds (``--timeout``, ``--interval``): above 0, at most a day.
SECONDS = _Parsed("seconds", parse_seconds)
#: The seconds a timestamp may be off (``--tolerance``): 0 or more.
TOLERANCE = _Parsed("seconds", parse_tolerance)
#: The events a relay claims per batch.
LIMIT = _Parsed("count", parse_limit)


def parse_grace(value: object) -> datetime.timedelta:
    """A rotation's grace: seconds, 0 to 30 days (``thorn_core.rotation.grace_from``)."""
    from .rotation import grace_from

    return grace_from(value)


#: ``--grace`` of the rotate-secret commands.
GRACE = _Parsed("seconds", parse_grace)


def parse_endpoint(value: object) -> str:
    """The endpoint key ``value`` names: a URL's origin, or an endpoint name as it is.

    Raises:
        ValueError: neither a URL with a host nor a name without spaces.
    """
    from .endpoints import target_key

    return target_key(str(value))


#: An endpoint (``thorn endpoints`` arguments): a URL, standing for its origin, or a name.
ENDPOINT = _Parsed("endpoint", parse_endpoint)


def read_text(file: IO[str], what: str) -> str:
    """The content of a text file opened as UTF-8 (``click.File``), or a usage error naming
    the option (``what``) when it is not UTF-8."""
    try:
        return file.read()
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"{getattr(file, 'name', 'the file')!s} is not UTF-8 text "
            f"(byte {exc.object[exc.start]:#04x} at offset {exc.start})",
            param_hint=what,
        ) from None


#: The demo's subscriptions: (receiver path, event pattern, content type, secret).
_DEMO_SUBSCRIPTIONS = (
    ("/crm", "user.*", "application/json", "whsec_" + "ZGVtby1jcm0tc2VjcmV0LTAxMjM0NTY3ODk="),
    ("/audit", "*.created", "application/json", "audit-demo-secret"),
    ("/billing", "order.paid", "application/x-www-form-urlencoded", "billing-demo-secret"),
    ("/firehose", "*", "application/json", "firehose-demo-secret"),
)

_DEMO_EVENTS = (
    ("user.created", {"id": 1, "username": "ada", "email": "ada@example.com"}),
    ("user.profile.updated", {"id": 1, "fields": ["display_name"]}),
    ("order.created", {"id": 42, "total": "19.99", "currency": "EUR"}),
    ("order.paid", {"id": 42, "method": "card"}),
    ("invoice.sent", {"id": 7, "order": 42}),
)


@click.group()
@click.version_option(__version__, prog_name="thorn")
def main() -> None:
    """Thorn: webhooks for Python applications."""


@main.command()
def demo() -> None:
    """Send a few events to subscribers on a local receiver and show what arrived, verified."""
    from .app import Thorn
    from .events import Event
    from .validators import allow_cidr_network, block_internal_ips, ensure_protocol

    with WebhookReceiver() as receiver:
        secrets = {path: secret for path, _, _, secret in _DEMO_SUBSCRIPTIONS}
        settings = {
            "THORN_SUBSCRIBERS": {
                pattern: {"url": receiver.url(path), "content_type": ctype, "hmac_secret": secret}
                for path, pattern, ctype, secret in _DEMO_SUBSCRIPTIONS
            },
            # The demo receiver is on loopback, which Thorn refuses by default: open it on purpose.
            "THORN_RECIPIENT_VALIDATORS": [
                ensure_protocol("http", "https"),
                block_internal_ips(),
                allow_cidr_network("127.0.0.0/8"),
            ],
        }
        click.echo(f"Receiver listening on {receiver.url()}\n")
        click.echo("Subscriptions:")
        for path, pattern, ctype, _ in _DEMO_SUBSCRIPTIONS:
            click.echo(f"  {pattern:<12} -> {receiver.url(path)}  ({ctype})")
        click.echo()
        sent = 0
        with Thorn(settings, set_as_current=False) as app:
            for name, data in _DEMO_EVENTS:
                result = Event(name, app=app).send(data)
                sent += len(result.deliveries)
                failed = [d for d in result.deliveries if not d.ok]
                for delivery in failed:
                    click.echo(f"  delivery of {name} failed: {delivery.error}", err=True)
        received = receiver.wait_for(sent, timeout=10)

        # Each webhook's two signatures, checked once for both the table and the count.
        checked = [
            (w, w.hook_hmac_valid(secrets[w.path]), w.standard_webhook_valid(secrets[w.path]))
            for w in sorted(received, key=lambda w: (w.path, w.event or ""))
        ]
        rows = [("receiver", "event", "delivery", "content type", "Hook-HMAC", "Std Webhooks")]
        for webhook, hook_ok, standard_ok in checked:
            rows.append(
                (
                    webhook.path,
                    webhook.event or "?",
                    (webhook.delivery_id or "?")[:8],
                    webhook.headers.get("content-type", "?"),
                    "verified" if hook_ok else "INVALID",
                    "verified" if standard_ok else "INVALID",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            click.echo("  ".join(cells).rstrip())
            if index == 0:
                click.echo("  ".join("-" * width for width in widths))
        verified = sum(1 for _, hook_ok, standard_ok in checked if hook_ok and standard_ok)
        click.echo(
            f"\n{len(_DEMO_EVENTS)} events sent, {len(received)} webhooks received, "
            f"{verified} with both signatures verified."
        )
        if verified != len(received) or len(received) != sent:
            sys.exit(1)


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

#: Hop-by-hop and framing headers that ``thorn listen --forward`` does not copy.
_NOT_FORWARDED = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade"}
)

#: Bytes of a response body that ``thorn send`` and ``thorn listen --forward`` show.
_SHOWN_BODY = 200


def _excerpt(body: bytes) -> str:
    text = body[:_SHOWN_BODY].decode("utf-8", "replace").strip()
    return text + (" ..." if len(body) > _SHOWN_BODY else "")


def _pretty(content_type: str | None, body: bytes) -> str:
    """A body for people: JSON and forms as indented JSON, anything else as text."""
    import json

    from .verification import parse_payload

    try:
        payload = parse_payload(content_type, body)
    except (ValueError, UnicodeDecodeError):
        payload = body
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return json.dumps(payload, indent=2, ensure_ascii=False)


#: The ``--tolerance`` option of ``thorn listen`` and ``thorn verify``.
_TOLERANCE = click.option(
    "--tolerance",
    default=300.0,
    show_default=True,
    type=TOLERANCE,
    help="Seconds the webhook-timestamp may be off (0 or more).",
)


def _check_forward(url: str) -> None:
    """Refuse a ``--forward`` URL that is not a well-formed http(s) URL, before listening."""
    from .exceptions import InvalidURL
    from .validators import parse_target

    try:
        target = parse_target(url)
    except InvalidURL as exc:
        raise click.BadParameter(str(exc), param_hint="--forward") from None
    if target.scheme not in ("http", "https"):
        raise click.BadParameter(
            f"{display_url(url)!r} must be an http:// or https:// URL", param_hint="--forward"
        )


def _read_json(text: str, what: str) -> Any:
    try:
        return parse_json(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


# ---------------------------------------------------------------------------
# thorn listen
# ---------------------------------------------------------------------------


class _Listener:
    """What ``thorn listen`` does with each request: verify, print, forward, answer."""

    def __init__(
        self, secrets: tuple[str, ...], forward: str | None, tolerance: float, timeout: float
    ) -> None:
        self.secrets = secrets
        self.forward = forward
        #: The --forward URL as printed: its password masked.
        self.shown = display_url(forward) if forward is not None else ""
        self.tolerance = tolerance
        self.timeout = timeout
        self._lock = threading.Lock()
        self._session: Any = None

    def _forward(self, request: ReceivedWebhook) -> tuple[Reply, str]:
        import requests

        assert self.forward is not None
        headers = {k: v for k, v in request.headers.items() if k not in _NOT_FORWARDED}
        with self._lock:
            if self._session is None:
                self._session = requests.Session()
                self._session.trust_env = False
            session = self._session
        try:
            response = session.post(
                self.forward,
                data=request.body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return (502, b"forwarding failed"), f"forwarding to {self.shown} failed: {exc}"
        note = f"forwarded to {self.shown}: {response.status_code} {response.reason}"
        return (response.status_code, response.content[:65536]), note

    def __call__(self, request: ReceivedWebhook) -> Reply:
        from .exceptions import InvalidSignature
        from .verification import verify_request

        status = "not checked (no --secret)"
        verified = True
        if self.secrets:
            try:
                verify_request(
                    request.headers, request.body, self.secrets, tolerance=self.tolerance
                )
            except InvalidSignature as exc:
                status, verified = f"INVALID: {exc}", False
            else:
                status = "verified"
        reply: Reply = (200, b"ok") if verified else (401, f"invalid signature: {status}".encode())
        note = None
        if verified and self.forward is not None:
            reply, note = self._forward(request)
        stamp = time.strftime("%H:%M:%S")
        lines = [
            f"{stamp}  POST {request.path}  {request.event or '(no Hook-Event)'}  "
            f"delivery {request.delivery_id or request.headers.get('webhook-id') or '?'}",
            f"  signature: {status}",
            *(
                "  " + line
                for line in _pretty(request.headers.get("content-type"), request.body).splitlines()
            ),
        ]
        if note is not None:
            lines.append(f"  {note}")
        lines.append(f"  answered {reply[0]}")
        with self._lock:
            click.echo("\n".join(lines) + "\n")
        return reply

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free."
)
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    help="Verify signatures with this secret or whpk_ public key (repeat while rotating). "
    "Without it, nothing is verified.",
)
@click.option(
    "--forward",
    metavar="URL",
    help="Forward each verified webhook (same body and headers) to URL and answer with its "
    "response.",
)
@_TOLERANCE
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=SECONDS,
    help="Seconds to wait for the --forward URL.",
)
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many webhooks.")
def listen(
    host: str,
    port: int,
    secrets: tuple[str, ...],
    forward: str | None,
    tolerance: float,
    timeout: float,
    count: int | None,
) -> None:
    """Receive webhooks locally and print each one: event, delivery id, signature, payload.

    With --secret, a webhook whose signatures do not verify is answered 401 and not
    forwarded. Stop with Ctrl+C.
    """
    from .exceptions import ImproperlyConfigured
    from .signing import verification_key_problem

    try:
        for secret in secrets:
            verification_key_problem(secret, strict=True)
    except ImproperlyConfigured as exc:
        raise click.BadParameter(str(exc), param_hint="--secret") from None
    if forward is not None:
        _check_forward(forward)

    listener = _Listener(secrets, forward, tolerance, timeout)
    try:
        receiver = WebhookReceiver(host, port, respond=listener)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    with receiver:
        click.echo(f"Listening on {receiver.url()}")
        if secrets:
            click.echo("Signatures are verified; invalid webhooks are answered 401.")
        else:
            click.echo("Signatures are not verified (no --secret).")
        if forward is not None:
            shown = display_url(forward)
            click.echo(f"Forwarding {'verified ' if secrets else ''}webhooks to {shown}")
        click.echo("Press Ctrl+C to stop.\n")
        try:
            if count is None:
                threading.Event().wait()
            else:
                while True:
                    try:
                        receiver.wait_for(count, timeout=1.0)
                        break
                    except TimeoutError:
                        continue
        except KeyboardInterrupt:
            click.echo("Stopped.")
        finally:
            listener.close()


# ---------------------------------------------------------------------------
# thorn send
# ---------------------------------------------------------------------------


@main.command()
@click.argument("event")
@click.option("--url", required=True, help="The receiver's URL.")
@click.option(
    "--secret",
    help="Signing secret, or a whsk_ key to sign with ed25519 (default: a new whsec_ secret, "
    "printed so you can verify).",
)
@click.option("--data", "data_text", metavar="JSON", help="The payload as JSON (default: {}).")
@click.option(
    "--data-file",
    type=click.File("r", encoding="utf-8", lazy=True),
    help="Read the JSON payload from a file ('-' for standard input).",
)
@click.option(
    "--content-type",
    type=click.Choice(["application/json", "application/x-www-form-urlencoded"]),
    default="application/json",
    show_default=True,
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=SECONDS,
    help="Seconds the delivery may take.",
)
@click.option(
    "--allow-loopback",
    is_flag=True,
    help="Allow a receiver on this machine (127.0.0.0/8, ::1), refused by default.",
)
@click.option(
    "--allow-network",
    "networks",
    metavar="CIDR",
    multiple=True,
    help="Allow a private network, refused by default (repeatable).",
)
def send(
    event: str,
    url: str,
    secret: str | None,
    data_text: str | None,
    data_file: Any,
    content_type: str,
    timeout: float,
    allow_loopback: bool,
    networks: tuple[str, ...],
) -> None:
    """Send one signed webhook EVENT to --url and print the outcome.

    The same safety checks as the library apply: addresses that are not public are refused
    unless --allow-loopback or --allow-network opens them (which also lifts the 80/443 port
    rule, so that local receivers on other ports can be reached).
    """
    from .app import Thorn
    from .exceptions import ImproperlyConfigured, InvalidEventName, InvalidSubscriber, InvalidURL
    from .patterns import validate_event_name
    from .ping import ping
    from .signing import generate_secret
    from .subscribers import Subscriber, secret_problem
    from .validators import allow_cidr_network, block_internal_ips, ensure_protocol

    if data_text is not None and data_file is not None:
        raise click.UsageError("give --data or --data-file, not both")
    if data_file is not None:
        data = _read_json(read_text(data_file, "--data-file"), "--data-file")
    elif data_text is not None:
        data = _read_json(data_text, "--data")
    else:
        data = {}
    try:
        validate_event_name(event)
    except InvalidEventName as exc:
        raise click.BadParameter(str(exc), param_hint="EVENT") from None

    allowed = [*(["127.0.0.0/8", "::1/128"] if allow_loopback else []), *networks]
    settings: dict[str, Any] = {"THORN_EVENT_TIMEOUT": timeout}
    try:
        if allowed:
            settings["THORN_RECIPIENT_VALIDATORS"] = [
                ensure_protocol("http", "https"),
                block_internal_ips(),
                allow_cidr_network(*allowed),
            ]
    except (ValueError, ImproperlyConfigured) as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-network") from None
    generated = secret is None
    secret = secret or generate_secret(scheme="hmac")
    problem = secret_problem(secret)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--secret")
    try:
        subscriber = Subscriber(url=url, event=event, hmac_secret=secret, content_type=content_type)
    except (InvalidSubscriber, InvalidURL) as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from None
    try:
        with Thorn(settings, set_as_current=False) as app:
            delivery = ping(app, subscriber, event=event, data=data)
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"cannot send the payload: {exc}") from None

    if generated:
        click.echo(f"Signed with a new secret: {secret}")
    if delivery.ok:
        click.echo(
            f"{event} -> {display_url(url)}: {delivery.status_code} in "
            f"{delivery.duration * 1000:.0f} ms (delivery {delivery.id})"
        )
        if delivery.response_body:
            click.echo(f"response: {_excerpt(delivery.response_body)}")
        return
    reason = delivery.error or f"answered {delivery.status_code}"
    if delivery.attempts == 0 and not allowed and delivery.exception is not None:
        from .exceptions import RecipientRefused

        if isinstance(delivery.exception, RecipientRefused):
            reason += " (to send to this machine, pass --allow-loopback)"
    raise click.ClickException(f"delivery {delivery.id} failed: {reason}")


# ---------------------------------------------------------------------------
# thorn catalog
# ---------------------------------------------------------------------------


@main.command()
@click.option(
    "--app",
    "app_spec",
    required=True,
    metavar="MODULE:NAME",
    help="The Thorn app (or a function returning it) whose event types to write.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "asyncapi", "markdown"]),
    default="json",
    show_default=True,
    help="json: the types with their schemas; asyncapi: an AsyncAPI 3.0 document; markdown: "
    "a page for people.",
)
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="Write here instead of standard output.",
)
def catalog(app_spec: str, fmt: str, output: IO[str]) -> None:
    """Write the app's event catalog: the published contract of its webhooks."""
    from .asyncapi import render_catalog

    output.write(render_catalog(load_app(app_spec).catalog, fmt))


# ---------------------------------------------------------------------------
# thorn endpoints
# ---------------------------------------------------------------------------


def load_app(spec: str) -> Thorn:
    """The Thorn app ``--app`` names: ``package.module:name``, an app or a function of no
    arguments returning one, imported with the working directory on the path.

    Raises:
        click.BadParameter: the spec names nothing importable, or no app.
    """
    import inspect

    from .app import Thorn
    from .exceptions import ImproperlyConfigured
    from .signing import _import_string

    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = _import_string(spec, what="--app")
    except ImproperlyConfigured as exc:
        raise click.BadParameter(str(exc), param_hint="--app") from None
    if not isinstance(found, Thorn) and callable(found):
        try:
            inspect.signature(found).bind()
        except TypeError:
            raise click.BadParameter(
                f"{spec!r} is not a Thorn app, nor a function returning one without arguments",
                param_hint="--app",
            ) from None
        except ValueError:  # no signature to read (a builtin): call it and see
            pass
        found = found()
    if not isinstance(found, Thorn):
        raise click.BadParameter(
            f"{spec!r} is a {type(found).__name__}, not a Thorn app", param_hint="--app"
        )
    return found


def endpoints_output(
    app: Thorn, subscribers: Iterable[Any], targets: Iterable[str] = (), *, as_json: bool = False
) -> str:
    """What ``thorn endpoints`` prints for ``subscribers`` (core subscribers or stored rows):
    the endpoints named in ``targets`` (URLs or keys), else every endpoint of the app's
    static subscribers and of ``subscribers``; ``manage.py thorn_endpoints`` and ``flask thorn
    endpoints`` print it for their stored subscribers."""
    from .endpoints import endpoint_reports, render_endpoints, target_key
    from .health import endpoint_key

    keys = [endpoint_key(s) for s in (*app.static_subscribers.listed(), *subscribers)]
    only = [target_key(target) for target in targets] or None
    reports = endpoint_reports(app, keys, only=only)
    return render_endpoints(reports, as_json=as_json, now=time.time())


@main.command()
@click.option(
    "--app",
    "app_spec",
    metavar="MODULE:NAME",
    help="The Thorn app (or a function returning it) whose subscribers and health store "
    "to read; default: THORN_HEALTH_URL from --health-url and no static subscribers.",
)
@click.option(
    "--health-url",
    metavar="URL",
    help="The Redis URL of the health store (THORN_HEALTH_URL), when --app is not given.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.argument("targets", nargs=-1, type=ENDPOINT, metavar="[URL_OR_ENDPOINT]...")
def endpoints(
    app_spec: str | None, health_url: str | None, as_json: bool, targets: tuple[str, ...]
) -> None:
    """Show the health of endpoints: circuit state, failure rate, requests in the window and
    when the next probe goes out.

    Lists the endpoints of the app's static subscribers, or only those named (a URL stands
    for its origin). Stored subscribers: `python manage.py thorn_endpoints` or
    `flask thorn endpoints`.
    """
    from .app import Thorn
    from .exceptions import ImproperlyConfigured

    if app_spec is not None and health_url is not None:
        raise click.UsageError("give --app or --health-url, not both")
    if app_spec is not None:
        app = load_app(app_spec)
        try:
            click.echo(endpoints_output(app, (), targets, as_json=as_json))
        except ImproperlyConfigured as exc:
            raise click.ClickException(str(exc)) from None
        return
    try:
        standalone = Thorn({"THORN_HEALTH_URL": health_url}, set_as_current=False)
    except ImproperlyConfigured as exc:
        raise click.BadParameter(str(exc), param_hint="--health-url") from None
    with standalone:
        click.echo(endpoints_output(standalone, (), targets, as_json=as_json))


# ---------------------------------------------------------------------------
# thorn verify
# ---------------------------------------------------------------------------


def _parse_headers(text: str) -> dict[str, str]:
    """Headers from a JSON object or from ``Name: value`` lines (a request line is skipped)."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        loaded = _read_json(stripped, "--headers")
        if not isinstance(loaded, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--headers")
        return {str(k).lower(): str(v) for k, v in loaded.items()}
    headers: dict[str, str] = {}
    for number, line in enumerate(stripped.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            if number == 1:  # "POST /hooks HTTP/1.1" or "HTTP/1.1 200 OK"
                continue
            raise click.BadParameter(
                f"line {number} is not 'Name: value': {line.strip()[:60]!r}", param_hint="--headers"
            )
        headers[name.strip().lower()] = value.strip()
    return headers


def _age(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@main.command()
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    required=True,
    help="The subscription's secret, or its whpk_ public key (repeat while rotating: any may "
    "match).",
)
@click.option(
    "--headers",
    "headers_file",
    required=True,
    type=click.File("r", encoding="utf-8", lazy=True),
    help="The request headers: 'Name: value' lines (as curl -D writes them) or a JSON object.",
)
@click.option(
    "--body",
    "body_file",
    required=True,
    type=click.File("rb", lazy=True),
    help="The raw request body, byte for byte ('-' for standard input).",
)
@_TOLERANCE
@click.option(
    "--ignore-timestamp",
    is_flag=True,
    help="Check the signatures only, not the timestamp's age (for old captures).",
)
@click.option(
    "--digest",
    default="sha256",
    show_default=True,
    type=click.Choice(["sha1", "sha224", "sha256", "sha384", "sha512"]),
    help="The subscription's Hook-HMAC digest.",
)
def verify(
    secrets: tuple[str, ...],
    headers_file: Any,
    body_file: Any,
    tolerance: float,
    ignore_timestamp: bool,
    digest: str,
) -> None:
    """Check the signatures of a captured delivery: Hook-HMAC and Standard Webhooks (``v1``
    with a secret, ``v1a`` with a whpk_ public key)."""
    from .exceptions import ImproperlyConfigured, InvalidSignature
    from .signing import is_asymmetric_key, verify_hook_hmac, verify_standard_webhook

    headers = _parse_headers(read_text(headers_file, "--headers"))
    body: bytes = body_file.read()
    if "hook-hmac" not in headers and "webhook-signature" not in headers:
        raise click.ClickException(
            "no signature in the headers: expected Hook-HMAC or webhook-signature"
        )
    failures: list[str] = []
    hmac_secrets = [secret for secret in secrets if not is_asymmetric_key(secret)]
    try:
        if "hook-hmac" in headers and not hmac_secrets:
            click.echo("Hook-HMAC: not checked (a public key verifies webhook-signature only)")
        elif "hook-hmac" in headers:
            try:
                verify_hook_hmac(hmac_secrets, body, headers["hook-hmac"], digest)
            except InvalidSignature as exc:
                failures.append(f"Hook-HMAC: {exc}")
                click.echo(f"Hook-HMAC ({digest}): INVALID: {exc}")
            else:
                click.echo(f"Hook-HMAC ({digest}): valid")
        if "webhook-signature" in headers:
            raw = headers.get("webhook-timestamp", "")
            timestamp = int(raw) if raw.isascii() and raw.isdigit() else None
            try:
                # The signature alone first (as of its own timestamp), then the age.
                verify_standard_webhook(secrets, headers, body, tolerance=tolerance, now=timestamp)
            except InvalidSignature as exc:
                failures.append(f"Standard Webhooks: {exc}")
                click.echo(f"Standard Webhooks signature: INVALID: {exc}")
            else:
                click.echo("Standard Webhooks signature: valid")
                assert timestamp is not None
                offset = time.time() - timestamp
                when = f"{_age(offset)} {'old' if offset >= 0 else 'in the future'}"
                if ignore_timestamp:
                    click.echo(f"webhook-timestamp: {when} (not checked: --ignore-timestamp)")
                elif abs(offset) > tolerance:
                    failures.append(
                        f"webhook-timestamp is {when}, outside the {tolerance:g}s tolerance "
                        f"(--ignore-timestamp checks an old capture's signatures only)"
                    )
                    click.echo(f"webhook-timestamp: {when}: outside the {tolerance:g}s tolerance")
                else:
                    click.echo(f"webhook-timestamp: {when}: within the {tolerance:g}s tolerance")
    except ImproperlyConfigured as exc:
        raise click.BadParameter(str(exc), param_hint="--secret") from None
    if failures:
        raise click.ClickException(failures[0])
    click.echo("OK: the delivery's signatures verify.")


@main.command("rotate-secret")
@click.option(
    "--secret",
    prompt="Current secret",
    hide_input=True,
    help="The static subscriber's current secret (asked for, unechoed, when not given).",
)
@click.option(
    "--grace",
    type=GRACE,
    default=None,
    help="Seconds the old secret keeps signing (default 86400, at most 2592000).",
)
def rotate_secret_command(secret: str, grace: datetime.timedelta | None) -> None:
    """Rotate the secret of a static subscriber (THORN_SUBSCRIBERS): prints the fields to
    put in its entry, the new secret shown this once; stored subscribers rotate with
    'flask thorn rotate-secret' or 'manage.py thorn_subscribers rotate-secret'."""
    import json

    from .rotation import grace_from, rotate_set
    from .secretset import SecretSet
    from .subscribers import secret_problem

    problem = secret_problem(secret.strip())
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--secret")
    rotated = rotate_set(SecretSet(secret.strip()), grace_from(grace))
    fields = {
        "hmac_secret": rotated.current,
        "previous_secrets": [s.as_dict() for s in rotated.previous],
    }
    click.echo("Put these fields in the subscriber's THORN_SUBSCRIBERS entry:")
    click.echo(json.dumps(fields, indent=2))


# ---------------------------------------------------------------------------
# thorn keys
# ---------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """ed25519 keys for asymmetric (v1a) signatures."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new ed25519 key pair: the whsk_ signing key (the subscriber's secret, keep it
    private) and the whpk_ public key (give it to the receiver)."""
    from .ed25519 import generate_keypair
    from .exceptions import ImproperlyConfigured

    try:
        secret, public = generate_keypair()
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"signing key (secret):  {secret}")
    click.echo(f"public key:            {public}")


@keys.command("public")
@click.argument("secret", envvar="THORN_SIGNING_KEY")
def keys_public(secret: str) -> None:
    """Print the whpk_ public key of a whsk_ signing key SECRET (or $THORN_SIGNING_KEY)."""
    from .ed25519 import is_signing_key, public_key
    from .exceptions import ImproperlyConfigured

    if not is_signing_key(secret):
        raise click.BadParameter("not a whsk_ signing key", param_hint="SECRET")
    try:
        click.echo(public_key(secret))
    except ImproperlyConfigured as exc:
        raise click.BadParameter(str(exc), param_hint="SECRET") from None
