"""The ``thorn`` command line: ``thorn demo`` shows webhooks arrive at a local receiver."""

from __future__ import annotations

import sys

import click

from ._version import __version__

__all__ = ["main"]

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
    from .receiver import WebhookReceiver
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

        rows = [("receiver", "event", "delivery", "content type", "Hook-HMAC", "Std Webhooks")]
        for webhook in sorted(received, key=lambda w: (w.path, w.event or "")):
            secret = secrets[webhook.path]
            rows.append(
                (
                    webhook.path,
                    webhook.event or "?",
                    (webhook.delivery_id or "?")[:8],
                    webhook.headers.get("content-type", "?"),
                    "verified" if webhook.hook_hmac_valid(secret) else "INVALID",
                    "verified" if webhook.standard_webhook_valid(secret) else "INVALID",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            click.echo("  ".join(cells).rstrip())
            if index == 0:
                click.echo("  ".join("-" * width for width in widths))
        verified = sum(
            1
            for w in received
            if w.hook_hmac_valid(secrets[w.path]) and w.standard_webhook_valid(secrets[w.path])
        )
        click.echo(
            f"\n{len(_DEMO_EVENTS)} events sent, {len(received)} webhooks received, "
            f"{verified} with both signatures verified."
        )
        if verified != len(received) or len(received) != sent:
            sys.exit(1)
