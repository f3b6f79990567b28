"""Credentials in subscriber URLs, Flask side: a stored subscription's repr masks them."""

from __future__ import annotations

from collections.abc import Callable

from .app import Subscription


class TestStoredSubscriptionRepr:
    """A subscription row can be logged or printed without its URL's credentials."""

    def test_repr_masks_password_and_token(self, subscribe: Callable[..., Subscription]) -> None:
        """``repr()`` shows the URL through ``display_url``; the stored value is untouched."""
        url = "https://ada:hunter2@example.com/hook?api_key=k3y"
        row = subscribe(url, event="article.*")
        assert repr(row) == (
            "<Subscription 'article.*' -> 'https://ada:***@example.com/hook?api_key=***'>"
        )
        assert row.url == url
