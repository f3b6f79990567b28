"""A Django process for the outbox crash test: ``commit`` saves a model and is killed, ``relay``
runs ``manage.py thorn_relay``.

Usage: ``python -m tests.django._outbox_crash (commit|relay) DATABASE_JSON RECEIVER_URL``.
``commit`` migrates (SQLite file), stores a subscriber of ``article.*`` at the receiver, saves
an article inside ``transaction.atomic()`` with ``THORN_OUTBOX`` on, prints the outbox size
after the commit, and sends itself SIGKILL before anything could relay the event.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def configure(database: dict[str, str]) -> None:
    """Django with the test project's settings on ``database``, the outbox on, loopback allowed."""
    import django
    from django.conf import settings

    from tests.django import settings as test_settings
    from thorn_core.testing import loopback_validators

    values = {name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
    values.update(
        DATABASES={"default": database},
        THORN_OUTBOX=True,
        THORN_RECIPIENT_VALIDATORS=list(loopback_validators()),
    )
    settings.configure(**values)
    django.setup()


def commit(receiver_url: str, migrate: bool) -> None:
    """Save an article in a committed transaction, then die by SIGKILL."""
    from django.core.management import call_command
    from django.db import transaction

    from tests.django.testapp.models import Article
    from thorn_django.models import OutboxEvent, Subscriber

    if migrate:
        call_command("migrate", verbosity=0)
    Subscriber.objects.create(event="article.*", url=receiver_url)
    with transaction.atomic():
        Article.objects.create(title="Committed, then the process died")
    print(OutboxEvent.objects.filter(done_at__isnull=True).count(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    """Run ``commit`` or ``relay``."""
    action, database, receiver_url = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    configure(database)
    if action == "commit":
        commit(receiver_url, migrate=database["ENGINE"].endswith("sqlite3"))
    else:
        from django.core.management import call_command

        call_command("thorn_relay")


if __name__ == "__main__":
    main()
