"""The core's check of a submitted subscription: types, lengths, chosen secrets, bodies."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import Thorn
from thorn_core.signing import generate_secret
from thorn_core.subscriptions import (
    MAX_BODY_SIZE,
    MAX_CONTENT_TYPE_LENGTH,
    MAX_DIGEST_LENGTH,
    MAX_EVENT_LENGTH,
    MAX_SECRET_LENGTH,
    MAX_URL_LENGTH,
    MIN_SECRET_LENGTH,
    NON_FIELD_ERRORS,
    REQUIRED_FIELDS,
    SubscriptionInvalid,
    body_limit,
    body_too_large,
    check_object,
    check_subscription,
    ensure_subscription,
    read_since,
    unmask_url,
)

#: A URL the loopback validators of the test apps accept without DNS.
GOOD_URL = "http://127.0.0.1:8000/hook"


@pytest.fixture
def app(make_app: Callable[..., Thorn]) -> Thorn:
    """An explicit app that accepts loopback URLs."""
    return make_app()


class TestTypes:
    """A value of the wrong JSON type is named, never converted nor a TypeError."""

    @pytest.mark.parametrize(
        "field", ["event", "url", "content_type", "hmac_digest", "hmac_secret"]
    )
    @pytest.mark.parametrize("value", [["a"], {"a": 1}, 5, 1.5, True])
    def test_strings_must_be_strings(self, app: Thorn, field: str, value: Any) -> None:
        """Lists, objects, numbers and booleans are not strings (a list is unhashable too)."""
        assert check_subscription(app, {field: value}) == {field: ["Not a valid string."]}

    @pytest.mark.parametrize("value", ["yes", "true", 1, 0, {}, []])
    def test_active_must_be_a_boolean(self, app: Thorn, value: Any) -> None:
        """``active`` is true or false, not a string or number that looks like one."""
        assert check_subscription(app, {"active": value}) == {
            "active": ["Must be a valid boolean."]
        }

    @pytest.mark.parametrize("field", ["event", "url", "active", "hmac_secret"])
    def test_null_is_named(self, app: Thorn, field: str) -> None:
        """A null value is refused with its own message."""
        assert check_subscription(app, {field: None}) == {field: ["This field may not be null."]}

    def test_every_field_is_reported_at_once(self, app: Thorn) -> None:
        """A wrong type in one field does not hide a bad value in another."""
        errors = check_subscription(app, {"event": [], "url": "http://10.0.0.1/", "active": "1"})
        assert set(errors) == {"event", "url", "active"}
        assert "private" in errors["url"][0]

    def test_required_fields(self, app: Thorn) -> None:
        """Fields named as required must be present; the others are checked when given."""
        errors = check_subscription(app, {"hmac_digest": "md5"}, required=REQUIRED_FIELDS)
        assert errors["event"] == errors["url"] == ["This field is required."]
        assert "md5" in errors["hmac_digest"][0]

    def test_unknown_and_read_only_keys_are_ignored(self, app: Thorn) -> None:
        """Keys that are not writable fields (``id``, ``user``) are no business of the check."""
        assert check_subscription(app, {"event": "a.*", "user": [1], "id": {}}) == {}

    @pytest.mark.parametrize(
        ("body", "kind"),
        [([], "array"), ("x", "string"), (5, "number"), (None, "null"), (True, "boolean")],
    )
    def test_a_body_that_is_not_an_object(self, app: Thorn, body: object, kind: str) -> None:
        """A body that is not a JSON object is refused as a whole, naming its JSON type."""
        expected = {NON_FIELD_ERRORS: [f"Invalid data. Expected a dictionary, but got {kind}."]}
        assert check_subscription(app, body) == expected
        assert check_object(body) == expected
        assert check_object({}) == {}


class TestLengths:
    """The column lengths are the core's: the longest value passes, one more is refused."""

    @pytest.mark.parametrize(
        ("field", "limit", "longest"),
        [
            ("event", MAX_EVENT_LENGTH, "a" * MAX_EVENT_LENGTH),
            ("url", MAX_URL_LENGTH, GOOD_URL + "/" + "p" * (MAX_URL_LENGTH - len(GOOD_URL) - 1)),
            ("content_type", MAX_CONTENT_TYPE_LENGTH, None),
            ("hmac_digest", MAX_DIGEST_LENGTH, None),
            ("hmac_secret", MAX_SECRET_LENGTH, "s" * MAX_SECRET_LENGTH),
        ],
    )
    def test_one_character_too_many(
        self, app: Thorn, field: str, limit: int, longest: str | None
    ) -> None:
        """At the limit only the value's own checks apply; over it, the length is the message."""
        if longest is not None:
            assert len(longest) == limit
            assert check_subscription(app, {field: longest}) == {}
        too_long = (longest or "x" * limit) + "x"
        message = f"Ensure this field has no more than {limit} characters."
        assert check_subscription(app, {field: too_long}) == {field: [message]}

    def test_the_models_hold_what_passes(self) -> None:
        """The lengths are those of the models' columns (no migration: the values are 1.x's)."""
        assert (MAX_EVENT_LENGTH, MAX_URL_LENGTH, MAX_CONTENT_TYPE_LENGTH) == (200, 2048, 100)
        assert (MAX_DIGEST_LENGTH, MAX_SECRET_LENGTH) == (16, 255)


class TestChosenSecrets:
    """A secret the user chooses is kept when usable, refused with a reason otherwise."""

    @pytest.mark.parametrize(
        "secret",
        [generate_secret(), "s3cr3t-of-16-chr", "~!#$%^&*()_+{}|:<>?" * 3],
    )
    def test_accepted(self, app: Thorn, secret: str) -> None:
        """Generated secrets and printable ASCII of at least 16 characters pass."""
        assert check_subscription(app, {"hmac_secret": secret}) == {}

    @pytest.mark.parametrize(
        ("secret", "message"),
        [
            ("short", f"Ensure this field has at least {MIN_SECRET_LENGTH} characters."),
            ("", f"Ensure this field has at least {MIN_SECRET_LENGTH} characters."),
            ("with a space inside it", "Use printable ASCII characters only, without spaces."),
            ("tab\tseparated-secret", "Use printable ASCII characters only, without spaces."),
            ("pässwörter-über-alles", "Use printable ASCII characters only, without spaces."),
            ("whsec_!!!!not-base64!!!!", "base64"),
        ],
    )
    def test_refused(self, app: Thorn, secret: str, message: str) -> None:
        """Short secrets, spaces, control or non-ASCII characters and bad whsec_ are refused."""
        errors = check_subscription(app, {"hmac_secret": secret})
        assert list(errors) == ["hmac_secret"]
        assert message in errors["hmac_secret"][0]


class TestEnsure:
    """ensure_subscription raises what check_subscription returns."""

    def test_raises_with_the_messages(self, app: Thorn) -> None:
        """The exception carries the messages by field, required fields included."""
        with pytest.raises(SubscriptionInvalid) as raised:
            ensure_subscription(app, {"event": 5}, required=["url"])
        assert raised.value.errors == {
            "url": ["This field is required."],
            "event": ["Not a valid string."],
        }


class TestMaskedUrls:
    """A URL sent back as the API showed it (password masked) keeps the stored one."""

    def test_the_masked_form_keeps_the_stored_url(self) -> None:
        """``https://u:***@host`` read from the API and written back changes nothing."""
        stored = "https://user:hunter2@example.com/hook"
        assert unmask_url("https://user:***@example.com/hook", stored) == stored

    @pytest.mark.parametrize(
        "submitted",
        [
            "https://user:new-password@example.com/hook",
            "https://user:***@example.org/hook",
            "https://example.com/hook",
            5,
        ],
    )
    def test_anything_else_is_taken_as_sent(self, submitted: object) -> None:
        """A new password, another URL or a wrong type is the client's choice (then checked)."""
        assert unmask_url(submitted, "https://user:hunter2@example.com/hook") == submitted


class TestSince:
    """The ``since`` of a redelivery request."""

    def test_iso_times(self) -> None:
        """None is no bound; a time without an offset is UTC."""
        assert read_since(None) is None
        assert read_since("2026-12-01T08:00") == datetime.datetime(
            2026, 12, 1, 8, tzinfo=datetime.timezone.utc
        )

    @pytest.mark.parametrize(
        ("value", "message"),
        [(5, "Not a valid string."), ("yesterday", "is not an ISO 8601"), ([], "Not a valid")],
    )
    def test_refused(self, value: object, message: str) -> None:
        """Other types and other strings are refused under ``since``."""
        with pytest.raises(SubscriptionInvalid) as raised:
            read_since(value)
        assert list(raised.value.errors) == ["since"]
        assert message in raised.value.errors["since"][0]


class TestBodyLimit:
    """The largest body the APIs read."""

    def test_the_smaller_of_the_cores_and_the_frameworks(self) -> None:
        """The framework's limit wins when it is smaller; None (no limit) leaves the core's."""
        assert body_limit(None) == MAX_BODY_SIZE
        assert body_limit(1000) == 1000
        assert body_limit(10 * MAX_BODY_SIZE) == MAX_BODY_SIZE
        assert body_too_large(1000) == "Request body too large: send at most 1000 bytes."
