"""URL references: ``model_reverser`` says how to turn an instance into the ``ref`` of a message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .exceptions import InvalidModelEvent
from .paths import parse_path, resolve_path

if TYPE_CHECKING:
    from .binding import ModelBinding

__all__ = ["model_reverser"]


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

    def __call__(self, instance: Any, binding: ModelBinding) -> str:
        """The absolute URL of ``instance``, reversed by ``binding``."""
        args, kwargs = self.arguments(instance)
        return binding.reverse(self.view_name, args, kwargs)
