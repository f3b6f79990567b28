"""URL references: ``model_reverser`` says how to turn an instance into the ``ref`` of a message,
and :func:`absolute_ref` makes a relative one absolute (``THORN_BASE_URL``, else the binding)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import urlsplit

import attrs

from .exceptions import InvalidModelEvent
from .paths import parse_path, resolve_path

if TYPE_CHECKING:
    from .binding import ModelBinding

__all__ = ["absolute_ref", "join_base_url", "model_reverser"]


def join_base_url(base_url: str, path: str) -> str:
    """``path`` under ``base_url`` (``THORN_BASE_URL``): ``https://shop.example`` and
    ``articles/1/`` give ``https://shop.example/articles/1/``; a path in the base is kept."""
    return base_url.rstrip("/") + (path if path.startswith("/") else f"/{path}")


@overload
def absolute_ref(url: str, base_url: str | None, binding: object = None) -> str: ...


@overload
def absolute_ref(url: None, base_url: str | None, binding: object = None) -> None: ...


def absolute_ref(url: str | None, base_url: str | None, binding: object = None) -> str | None:
    """The ``ref`` of a message from ``url``: an absolute URL stays as it is; a relative one
    is joined to ``base_url`` when set, else made absolute by the binding's optional
    ``absolute_url(url)`` (the current site, the request's host), else left as it is."""
    if url is None or urlsplit(url).scheme:
        return url
    if base_url:
        return join_base_url(base_url, url)
    absolute = getattr(binding, "absolute_url", None)
    return str(absolute(url)) if callable(absolute) else url


def _check_view_name(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidModelEvent(f"model_reverser needs a view name, got {value!r}")


def _check_paths(
    _: object, __: attrs.Attribute[Any], value: tuple[str, ...] | Mapping[str, str]
) -> None:
    """Parse every path (a mapping's values) so a malformed one raises at declaration."""
    for path in value.values() if isinstance(value, Mapping) else value:
        parse_path(path)


@attrs.frozen(init=False)
class model_reverser:
    """How to get the URL of an instance: a view name, and attribute paths for its arguments.

    ``model_reverser('article:detail', uuid='uuid')`` reverses ``article:detail`` with
    ``kwargs={'uuid': instance.uuid}``; ``model_reverser('broker:position',
    account='user.profile.account')`` reads ``instance.user.profile.account``. The ORM binding
    turns the view name and arguments into an absolute URL.

    Raises:
        InvalidModelEvent: the view name is empty or an attribute path is malformed.
    """

    view_name: str = attrs.field(validator=_check_view_name)
    args: tuple[str, ...] = attrs.field(validator=_check_paths)
    kwargs: Mapping[str, str] = attrs.field(validator=_check_paths)

    def __init__(self, view_name: str, *args: str, **kwargs: str) -> None:
        self.__attrs_init__(view_name, args, dict(kwargs))

    def arguments(self, instance: Any) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments for ``reverse``, read from ``instance``."""
        return (
            [resolve_path(instance, path) for path in self.args],
            {key: resolve_path(instance, path) for key, path in self.kwargs.items()},
        )

    def __call__(self, instance: Any, binding: ModelBinding, base_url: str | None = None) -> str:
        """The absolute URL of ``instance``, reversed by ``binding``.

        With ``base_url`` (``THORN_BASE_URL``) and a binding that has the optional
        ``reverse_path`` (the view's path alone, no host needed), the path is joined to it.
        """
        args, kwargs = self.arguments(instance)
        reverse_path = getattr(binding, "reverse_path", None)
        if base_url and callable(reverse_path):
            return join_base_url(base_url, reverse_path(self.view_name, args, kwargs))
        return absolute_ref(binding.reverse(self.view_name, args, kwargs), base_url, binding)
