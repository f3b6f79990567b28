"""The Django binding of model events: model signals, ``transaction.on_commit``, URL reversing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models import signals
from django.urls import reverse

from thorn_core.binding import ChangeHandler, HandlerTable, ModelChange, Trigger, m2m_change
from thorn_core.reversers import join_base_url

__all__ = ["DjangoBinding", "absolute_uri"]

_M2M_ACTIONS = {"post_add": "m2m_add", "post_remove": "m2m_remove", "post_clear": "m2m_clear"}
#: Where ``pre_save`` leaves the row as it was before the save, for ``post_save``.
_PREVIOUS = "_thorn_previous"


def absolute_uri(path: str) -> str:
    """Make ``path`` absolute with ``THORN_BASE_URL``, else the current site (Sites framework).

    A URL that already has a scheme is returned as is. The site's domain is prefixed with
    ``https://``, unless the domain itself starts with ``http://`` or ``https://`` (handy in
    development: ``http://127.0.0.1:8000``). Without the Sites framework the path is returned
    unchanged.
    """
    if "://" in path:
        return path
    from .conf import get_app

    base_url = get_app().settings.base_url
    if base_url:
        return join_base_url(base_url, path)
    if not apps.is_installed("django.contrib.sites"):
        return path
    from django.contrib.sites.models import Site

    domain = Site.objects.get_current().domain.rstrip("/")
    base = domain if domain.startswith(("http://", "https://")) else f"https://{domain}"
    return base + (path if path.startswith("/") else f"/{path}")


class DjangoBinding:
    """The :class:`~thorn_core.binding.ModelBinding` of Django models.

    - create and change: ``post_save`` (``created`` tells them apart; fixture loading with
      ``raw=True`` sends nothing);
    - delete: ``post_delete``;
    - many-to-many add, remove and clear: ``m2m_changed`` on the field's through model, for
      changes made from the model that declares the field (``post_add``, ``post_remove``,
      ``post_clear``);
    - the row before a change is read in ``pre_save`` only for models with an event that uses
      ``now_`` filters;
    - ``on_commit`` is ``transaction.on_commit`` on the database the instance was saved to
      (with ``THORN_OUTBOX`` on, the core writes the event to the outbox in the transaction
      of the change instead, when the outbox's database has one open);
    - ``reverse`` is ``django.urls.reverse`` made absolute with the current site, and so is a
      ``get_absolute_url()`` path.
    """

    def __init__(self) -> None:
        self._handlers = HandlerTable()
        self._local = threading.local()
        self._uid = f"thorn_django.binding.{id(self)}"
        signals.m2m_changed.connect(
            self._m2m_changed, weak=False, dispatch_uid=f"{self._uid}.m2m_changed"
        )

    # -- connecting -------------------------------------------------------------------------

    def _dispatch_uid(self, signal: str, model: type) -> str:
        return f"{self._uid}.{signal}.{model.__module__}.{model.__qualname__}"

    def connect(
        self,
        model: type,
        trigger: Trigger,
        handler: ChangeHandler,
        *,
        needs_previous: bool = False,
    ) -> None:
        """Call ``handler`` when ``trigger`` happens to an instance of ``model``."""
        self._handlers.add(model, trigger, handler, needs_previous)
        # dispatch_uid makes connecting twice a no-op; weak=False keeps the receivers alive.
        signals.post_save.connect(
            self._post_save,
            sender=model,
            weak=False,
            dispatch_uid=self._dispatch_uid("post_save", model),
        )
        signals.post_delete.connect(
            self._post_delete,
            sender=model,
            weak=False,
            dispatch_uid=self._dispatch_uid("post_delete", model),
        )
        if needs_previous:
            signals.pre_save.connect(
                self._pre_save,
                sender=model,
                weak=False,
                dispatch_uid=self._dispatch_uid("pre_save", model),
            )

    def disconnect(self, model: type, trigger: Trigger, handler: ChangeHandler) -> None:
        """Undo :meth:`connect`; the model's receivers go when its last handler does."""
        self._handlers.remove(model, trigger, handler)
        if not self._handlers.needs_previous(model):
            signals.pre_save.disconnect(
                sender=model, dispatch_uid=self._dispatch_uid("pre_save", model)
            )
        if not self._handlers.connected(model):
            for name, signal in (
                ("post_save", signals.post_save),
                ("post_delete", signals.post_delete),
            ):
                signal.disconnect(sender=model, dispatch_uid=self._dispatch_uid(name, model))

    # -- receivers --------------------------------------------------------------------------

    @contextmanager
    def _using(self, alias: str | None) -> Iterator[None]:
        """Remember the database of the change, for :meth:`on_commit`."""
        saved = getattr(self._local, "using", None)
        self._local.using = alias
        try:
            yield
        finally:
            self._local.using = saved

    def _pre_save(
        self,
        sender: type,
        instance: models.Model,
        raw: bool = False,
        using: str | None = None,
        **kwargs: Any,
    ) -> None:
        if raw or instance._state.adding or instance.pk is None:
            return
        if not self._handlers.needs_previous(sender, ("change",)):
            return
        manager = type(instance)._base_manager
        previous = manager.using(using or DEFAULT_DB_ALIAS).filter(pk=instance.pk).first()
        setattr(instance, _PREVIOUS, previous)

    def _post_save(
        self,
        sender: type,
        instance: models.Model,
        created: bool = False,
        raw: bool = False,
        using: str | None = None,
        **kwargs: Any,
    ) -> None:
        previous = instance.__dict__.pop(_PREVIOUS, None)
        if raw:
            return
        hook = "create" if created else "change"
        matching = self._handlers.matching(sender, (hook,))
        if not matching:
            return
        with self._using(using):
            for _trigger, handler, needs_previous in matching:
                if hook == "change" and needs_previous:
                    # A row that vanished before the save: compare with no previous values.
                    change = ModelChange(instance, previous if previous is not None else {})
                else:
                    change = ModelChange(instance)
                handler(change)

    def _post_delete(
        self, sender: type, instance: models.Model, using: str | None = None, **kwargs: Any
    ) -> None:
        matching = self._handlers.matching(sender, ("delete",))
        with self._using(using):
            for _trigger, handler, _needs in matching:
                handler(ModelChange(instance))

    def _m2m_changed(
        self,
        sender: type,
        instance: Any,
        action: str,
        reverse: bool,
        model: type,
        pk_set: set[Any] | None,
        using: str | None = None,
        **kwargs: Any,
    ) -> None:
        hook = _M2M_ACTIONS.get(action)
        if hook is None or reverse:
            return
        matching = self._handlers.matching(type(instance), (hook,))
        if not matching:
            return
        if hook != "m2m_clear" and not pk_set:
            return
        related = sorted(pk_set or (), key=str)
        with self._using(using):
            for trigger, handler, _needs in matching:
                if _through(type(instance), trigger.field) is not sender:
                    continue
                handler(m2m_change(instance, trigger, related))

    # -- transactions and URLs --------------------------------------------------------------

    def on_commit(self, callback: Callable[[], object]) -> None:
        """``transaction.on_commit`` on the database of the change being handled."""
        alias = getattr(self._local, "using", None) or DEFAULT_DB_ALIAS
        transaction.on_commit(callback, using=alias)

    def reverse(self, view_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """``django.urls.reverse`` made absolute with :func:`absolute_uri`."""
        return absolute_uri(self.reverse_path(view_name, args, kwargs))

    def reverse_path(self, view_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """``django.urls.reverse``: the path alone (the core joins ``THORN_BASE_URL`` to it)."""
        return reverse(view_name, args=list(args), kwargs=dict(kwargs))

    def absolute_url(self, url: str) -> str:
        """Make a ``get_absolute_url()`` path absolute with :func:`absolute_uri`."""
        return absolute_uri(url)

    def __repr__(self) -> str:
        return "<DjangoBinding>"


def _through(model: type, field: str | None) -> Any:
    """The through model of the many-to-many ``field`` of ``model`` (None when it has none)."""
    if field is None:
        return None
    descriptor = getattr(model, field, None)
    rel = getattr(descriptor, "rel", None)
    return getattr(rel, "through", None)
