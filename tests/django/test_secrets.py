"""Secret rotation and encryption at rest in Django: the API, the admin, the commands, the
raw rows (run on PostgreSQL with THORN_TEST_DATABASE=postgresql)."""

from __future__ import annotations

import datetime
import io
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from thorn_core.ping import ping
from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.checks import check_secret_keys
from thorn_django.models import Subscriber
from thorn_django.source import StoredSubscribers

pytestmark = pytest.mark.django_db


def rotate_url(row: Any) -> str:
    """The API URL that rotates the secret of ``row``."""
    return reverse("thorn:subscriber-rotate-secret", kwargs={"uuid": row.uuid})


def raw_secrets(row: Any) -> tuple[str, str]:
    """``hmac_secret`` and ``previous_secrets`` exactly as the database holds them."""
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT hmac_secret, previous_secrets FROM {table} WHERE id = %s",  # noqa: S608
            [row.pk],
        )
        return cursor.fetchone()


def key() -> str:
    """A new Fernet key."""
    return Fernet.generate_key().decode()


@pytest.fixture
def alice(make_user: Callable[[str], Any]) -> Any:
    """The owner of the subscriptions."""
    return make_user("alice")


@pytest.fixture
def client(alice: Any) -> APIClient:
    """An API client logged in as alice."""
    api = APIClient()
    api.force_authenticate(alice)
    return api


class TestRotateThroughTheApi:
    """POST …/{uuid}/rotate-secret/: the owner gets a new secret once, others a 404."""

    def test_owner_rotates_and_both_secrets_verify(
        self, client: APIClient, alice: Any, subscribe: Any, receiver: WebhookReceiver, loopback
    ) -> None:
        """The answer holds the new secret; a ping verifies with the old and the new one."""
        row = subscribe("thorn.ping", receiver.url(), user=alice)
        old = row.hmac_secret

        answer = client.post(rotate_url(row), {"grace": 3600}, format="json")

        assert answer.status_code == 200, answer.content
        body = answer.json()
        new = body["hmac_secret"]
        assert new != old
        assert body["previous_secret_expires_at"]
        row.refresh_from_db()
        assert row.hmac_secret == new
        client.post(reverse("thorn:subscriber-ping", kwargs={"uuid": row.uuid}))
        (received,) = receiver.wait_for(1, 5.0)
        for secret in (old, new):
            assert Webhook(secret).verify(received.body, dict(received.headers))

    def test_secret_is_shown_only_in_the_rotation_answer(
        self, client: APIClient, alice: Any, subscribe: Any
    ) -> None:
        """Reading the subscription afterwards shows neither the new nor the old secret."""
        row = subscribe("article.*", "https://example.com/hook", user=alice)
        client.post(rotate_url(row), format="json")
        text = client.get(reverse("thorn:subscriber-detail", kwargs={"uuid": row.uuid})).content
        row.refresh_from_db()
        assert row.hmac_secret.encode() not in text
        assert b"previous_secrets" not in text

    def test_another_users_subscription_is_not_found(
        self, client: APIClient, make_user: Any, subscribe: Any
    ) -> None:
        """Rotating a subscription someone else owns answers 404 and changes nothing."""
        row = subscribe("article.*", "https://example.com/hook", user=make_user("bob"))
        before = row.hmac_secret

        answer = client.post(rotate_url(row), format="json")

        assert answer.status_code == 404
        row.refresh_from_db()
        assert row.hmac_secret == before
        assert row.previous_secrets == ""

    @pytest.mark.parametrize(
        ("grace", "message"),
        [(-1, "must not be negative"), ("soon", "number of seconds"), (10**9, "at most")],
    )
    def test_bad_grace_is_400(
        self, client: APIClient, alice: Any, subscribe: Any, grace: Any, message: str
    ) -> None:
        """A negative, non-numeric or too long grace: 400 naming it; the secret is kept."""
        row = subscribe("article.*", "https://example.com/hook", user=alice)
        before = row.hmac_secret

        answer = client.post(rotate_url(row), {"grace": grace}, format="json")

        assert answer.status_code == 400
        assert message in answer.json()["grace"][0]
        row.refresh_from_db()
        assert row.hmac_secret == before


class TestEncryptionAtRest:
    """With THORN_SECRET_KEYS the columns hold Fernet tokens, never the secret."""

    def test_raw_row_holds_no_plaintext(self, settings: Any, client: APIClient, alice: Any) -> None:
        """A subscription created and rotated through the API is stored encrypted."""
        settings.THORN_SECRET_KEYS = [key()]
        created = client.post(
            "/hooks/", {"event": "article.*", "url": "https://example.com/h"}, format="json"
        ).json()
        row = Subscriber.objects.get(uuid=created["uuid"])
        rotated = client.post(rotate_url(row), format="json").json()

        stored, previous = raw_secrets(row)

        assert stored.startswith("fernet:")
        assert previous.startswith("fernet:")
        for secret in (created["hmac_secret"], rotated["hmac_secret"]):
            assert secret not in stored
            assert secret not in previous
        row.refresh_from_db()
        assert row.hmac_secret == rotated["hmac_secret"]
        assert [s.secret for s in row.as_subscriber().previous_secrets] == [created["hmac_secret"]]

    def test_reencrypt_moves_every_row_to_the_newest_key(
        self, settings: Any, subscribe: Any
    ) -> None:
        """After a new key is put first, reencrypt rewrites rows so the old key can go."""
        first, second = key(), key()
        settings.THORN_SECRET_KEYS = [first]
        rows = [subscribe("a.*", f"https://example.com/{n}") for n in range(3)]
        plain = Subscriber.objects.create(event="b.*", url="https://example.com/p")
        secrets = {r.pk: r.hmac_secret for r in [*rows, plain]}
        settings.THORN_SECRET_KEYS = [second, first]
        out = io.StringIO()

        call_command("thorn_subscribers", "reencrypt", stdout=out)

        assert "Rewrote the secrets of 4 subscriber(s)" in out.getvalue()
        settings.THORN_SECRET_KEYS = [second]
        for row in Subscriber.objects.all():
            assert row.hmac_secret == secrets[row.pk]
            token = raw_secrets(row)[0].removeprefix("fernet:")
            assert Fernet(second).decrypt(token.encode()).decode() == secrets[row.pk]

    def test_rows_in_clear_are_read_then_encrypted(self, settings: Any, subscribe: Any) -> None:
        """Rows written before the keys were set still deliver, and reencrypt encrypts them."""
        row = subscribe("a.*", "https://example.com/a")
        assert raw_secrets(row)[0] == row.hmac_secret
        settings.THORN_SECRET_KEYS = [key()]
        assert StoredSubscribers().get(row.uuid).hmac_secret == row.hmac_secret

        call_command("thorn_subscribers", "reencrypt", stdout=io.StringIO())

        assert raw_secrets(row)[0].startswith("fernet:")

    def test_no_matching_key_names_the_subscriber_only(
        self, settings: Any, subscribe: Any, caplog: Any
    ) -> None:
        """Without the row's key: skipped with its uuid, never its secret; reencrypt and
        rotate-secret fail naming it, and the row is left as it was."""
        settings.THORN_SECRET_KEYS = [key()]
        row = subscribe("a.*", "https://example.com/a")
        secret, stored = row.hmac_secret, raw_secrets(row)[0]
        settings.THORN_SECRET_KEYS = [key()]

        with caplog.at_level(logging.WARNING):
            assert StoredSubscribers().get(row.uuid) is None
        assert str(row.uuid) in caplog.text
        assert secret not in caplog.text
        with pytest.raises(CommandError, match=str(row.uuid)) as info:
            call_command("thorn_subscribers", "reencrypt", stdout=io.StringIO())
        assert secret not in str(info.value)
        with pytest.raises(CommandError, match=str(row.uuid)):
            call_command("thorn_subscribers", "rotate-secret", str(row.uuid), stdout=io.StringIO())
        assert raw_secrets(row)[0] == stored

    def test_malformed_key_is_a_configuration_error(self, settings: Any) -> None:
        """A key that is no Fernet key is reported by the checks (E006), without its value."""
        from thorn_django.checks import check_settings

        settings.THORN_SECRET_KEYS = ["hunter2"]
        (error,) = check_settings()
        assert error.id == "thorn.E006"
        assert "THORN_SECRET_KEYS[0]" in error.msg
        assert "hunter2" not in error.msg

    def test_warning_without_keys(self, settings: Any) -> None:
        """thorn.W001 says secrets are stored in clear; setting keys silences it."""
        assert [m.id for m in check_secret_keys()] == ["thorn.W001"]
        settings.THORN_SECRET_KEYS = [key()]
        assert check_secret_keys() == []


class TestCommandAndAdmin:
    """manage.py thorn_subscribers rotate-secret and the admin action."""

    def test_command_prints_the_new_secret_once(self, subscribe: Any) -> None:
        """rotate-secret prints the new secret and when the old one stops signing."""
        row = subscribe("a.*", "https://example.com/a")
        out = io.StringIO()

        call_command(
            "thorn_subscribers", "rotate-secret", str(row.uuid), "--grace", "60", stdout=out
        )

        row.refresh_from_db()
        assert f"Secret (shown once): {row.hmac_secret}" in out.getvalue()
        assert "keeps signing until" in out.getvalue()
        (old,) = row.as_subscriber().previous_secrets
        assert old.expires_at is not None

    def test_command_refuses_a_negative_grace(self, subscribe: Any) -> None:
        """--grace -5 is a usage error; nothing changes."""
        row = subscribe("a.*", "https://example.com/a")
        with pytest.raises(CommandError, match="negative"):
            call_command(
                "thorn_subscribers",
                "rotate-secret",
                str(row.uuid),
                "--grace=-5",
                stdout=io.StringIO(),
            )
        assert Subscriber.objects.get(pk=row.pk).previous_secrets == ""

    def test_admin_action_rotates_without_showing_secrets(
        self, admin_client: Any, subscribe: Any
    ) -> None:
        """The action rotates; neither the message nor the list page holds a secret."""
        row = subscribe("a.*", "https://example.com/a")
        old = row.hmac_secret
        changelist = reverse("admin:thorn_django_subscriber_changelist")

        answer = admin_client.post(
            changelist,
            {"action": "rotate_secret", "_selected_action": [row.pk]},
            follow=True,
        )

        row.refresh_from_db()
        assert row.hmac_secret != old
        page = answer.content.decode()
        assert "new secret (see its page)" in page
        assert row.hmac_secret not in page
        assert old not in page

    def test_expired_secrets_do_not_sign(
        self, subscribe: Any, receiver: WebhookReceiver, loopback: Any
    ) -> None:
        """A rotation whose grace is over: the stored old secret no longer verifies."""
        row = subscribe("thorn.ping", receiver.url())
        old = row.hmac_secret
        StoredSubscribers().rotate(row, datetime.timedelta(0))
        row.refresh_from_db()
        ping(get_app(), row.as_subscriber())
        (received,) = receiver.wait_for(1, 5.0)
        assert Webhook(row.hmac_secret).verify(received.body, dict(received.headers))
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(received.body, dict(received.headers))


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_and_encrypts_existing_secrets(settings: Any) -> None:
    """0004 keeps a 1.x-style secret stored in clear, encrypts it when THORN_SECRET_KEYS is
    set, and going back puts it in clear again."""
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    plain = "s" * 38
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("thorn_django")
    try:
        executor.migrate([("thorn_django", "0003_endpoint_limits")])
        now = datetime.datetime.now(datetime.timezone.utc)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (uuid, event, url, hmac_secret, hmac_digest, "  # noqa: S608
                "content_type, active, created_at, updated_at) VALUES (%s, 'a.b', "
                "'https://example.com/h', %s, 'sha256', 'application/json', %s, %s, %s)",
                [
                    uuid.uuid4().hex if connection.vendor == "sqlite" else str(uuid.uuid4()),
                    plain,
                    True,
                    now,
                    now,
                ],
            )
        settings.THORN_SECRET_KEYS = [key()]
        MigrationExecutor(connection).migrate([("thorn_django", "0004_secret_rotation")])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT hmac_secret, previous_secrets FROM {table}")  # noqa: S608
            ((stored, previous),) = cursor.fetchall()
        assert stored.startswith("fernet:")
        assert plain not in stored
        assert previous == ""

        MigrationExecutor(connection).migrate([("thorn_django", "0003_endpoint_limits")])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT hmac_secret FROM {table}")  # noqa: S608
            assert cursor.fetchall() == [(plain,)]
    finally:
        MigrationExecutor(connection).migrate(latest)
