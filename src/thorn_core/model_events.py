"""Model events: ``ModelEvent`` and ``@webhook_model`` send a webhook when a record changes.

A model event wraps a core :class:`~thorn_core.Event`: it filters the change, builds the
message ``{"event", "ref", "sender", "data"}`` from the instance, and sends it through the
event, at once or after the transaction commits. The ORM is reached only through a
:class:`~thorn_core.binding.ModelBinding`.
"""

from __future__ import annotations

import functools
import string
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .binding import ChangeHandler, ModelBinding, ModelChange, Trigger
from .catalog import EventType, add_type_provider, derive_schema
from .events import Event, _headers, _merge_headers
from .exceptions import ImproperlyConfigured, InvalidEventName, InvalidEventType, InvalidModelEvent
from .filters import MISSING, Q
from .paths import parse_path, resolve_path
from .patterns import validate_event_name
from .reversers import absolute_ref, model_reverser
from .subscribers import sender_key
from .telemetry import get_logger

if TYPE_CHECKING:
    from .app import Thorn
    from .delivery import Delivery
    from .message import EventMessage
    from .results import SendResult

__all__ = ["ModelEvent", "ModelWebhooks", "Reverse", "webhook_model"]

logger = get_logger(__name__)

#: How an event finds the ``ref`` URL: a :class:`model_reverser` (reversed by the binding) or
#: a callable taking the instance.
Reverse = model_reverser | Callable[[Any], "str | None"]

_ModelT = TypeVar("_ModelT", bound=type)

#: The events ``@webhook_model`` connects without a ``dispatches_on_*`` declaration.
_DEFAULT_TRIGGERS = {
    "on_create": Trigger("create"),
    "on_change": Trigger("change"),
    "on_delete": Trigger("delete"),
}


def _has_format_fields(name: str) -> bool:
    try:
        parts = list(string.Formatter().parse(name))
    except ValueError as exc:
        raise InvalidEventName(f"event name {name!r} is not a valid format string: {exc}") from None
    return any(field is not None for _literal, field, _spec, _conversion in parts)


def _check_sender_field(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidModelEvent(f"sender_field must be a dotted attribute path, got {value!r}")
    parse_path(value)
    return value


def _check_reverse(value: object) -> Reverse | None:
    if value is None or isinstance(value, model_reverser) or callable(value):
        return value
    raise InvalidModelEvent(
        f"reverse must be a model_reverser or a callable taking the instance, got {value!r}"
    )


class ModelEvent:
    """An event sent when an instance of a model is created, changed or deleted.

    The message is ``{"event": name, "ref": url or None, "sender": id or None, "data": {...}}``.
    ``name`` may format the instance: ``"user.{.username}"`` is sent as ``user.alice``.

    Args:
        name: the event name, optionally with format fields taking the instance.
        *filters: :class:`~thorn_core.Q` objects; all must match (AND).
        sender_field: dotted attribute path of the sender (``'author.account.user'``).
        reverse: how to compute ``ref``; else the instance's ``get_absolute_url()``, if any.
        signal_honors_transaction: send after the transaction commits, nothing on rollback;
            None follows ``THORN_SIGNAL_HONORS_TRANSACTION``.
        propagate_errors: when False, an error while handling a hook is logged and
            swallowed, so that ``save()`` never fails because of a webhook.
        app: as for :class:`~thorn_core.Event`; so are ``timeout``, ``retry``,
            ``retry_max``, ``retry_delay``, ``recipient_validators``, ``subscribers`` and
            ``headers``.
        schema: the schema of the message's ``data`` for the event catalog (JSON Schema, or a
            class one can be derived from); None: generated from the model's fields, loosely
            (no field required, others allowed). The catalog type describes the whole message.
        description: the catalog type's description.
        examples: examples of ``data`` for the catalog.
        version: the catalog type's version ("1" when None), and the one payloads keep.
        **field_filters: keyword filters ``path__operator=value`` (see :mod:`thorn_core.filters`).

    Raises:
        InvalidFilter: a filter is malformed (an unknown operator, ``state='X'`` without one).
        InvalidEventName: the name is malformed.
        InvalidModelEvent: ``sender_field`` or ``reverse`` is malformed.
    """

    def __init__(
        self,
        name: str,
        *filters: Any,
        sender_field: str | None = None,
        reverse: Reverse | None = None,
        signal_honors_transaction: bool | None = None,
        propagate_errors: bool = True,
        app: Thorn | None = None,
        timeout: float | None = None,
        retry: bool | None = None,
        retry_max: int | None = None,
        retry_delay: float | None = None,
        recipient_validators: Iterable[Any] | None = None,
        subscribers: Any = None,
        headers: Mapping[str, str] | None = None,
        schema: Any = None,
        description: str = "",
        examples: Iterable[Any] = (),
        version: str | None = None,
        **field_filters: Any,
    ) -> None:
        self.event = Event(
            name,
            app=app,
            timeout=timeout,
            retry=retry,
            retry_max=retry_max,
            retry_delay=retry_delay,
            recipient_validators=recipient_validators,
            subscribers=subscribers,
            headers=headers,
            version=version,
        )
        #: The catalog declaration: the ``data`` schema (or its source), description, examples.
        self.schema = schema
        self.description = description
        self.examples = tuple(examples)
        #: The name as declared (before formatting with an instance).
        self.name = name
        self._formatted = _has_format_fields(name)
        combined = Q(*filters, **field_filters)
        #: The filter every instance must match; None matches all.
        self.filter: Q | None = combined if combined else None
        self.sender_field = _check_sender_field(sender_field)
        self.reverse = _check_reverse(reverse)
        if signal_honors_transaction is not None and not isinstance(
            signal_honors_transaction, bool
        ):
            raise InvalidModelEvent(
                f"signal_honors_transaction must be True, False or None, "
                f"got {signal_honors_transaction!r}"
            )
        self.signal_honors_transaction = signal_honors_transaction
        self.propagate_errors = bool(propagate_errors)
        #: When the event is sent: the ``dispatches_on_*`` declarations, in order.
        self.triggers: list[Trigger] = []
        self._connections: weakref.WeakKeyDictionary[
            type, tuple[ModelBinding, dict[Trigger, ChangeHandler]]
        ] = weakref.WeakKeyDictionary()

    # -- configuration ---------------------------------------------------------------------

    @property
    def app(self) -> Thorn:
        """The app this event sends with."""
        return self.event.app

    @property
    def uses_transitions(self) -> bool:
        """Whether a ``now_`` filter needs the values from before a change."""
        return self.filter is not None and self.filter.uses_transitions

    @property
    def honors_transaction(self) -> bool:
        """Whether hooks send after commit (the option, else the app's setting)."""
        if self.signal_honors_transaction is not None:
            return self.signal_honors_transaction
        return self.app.settings.signal_honors_transaction

    def use_defaults(
        self,
        *,
        sender_field: str | None = None,
        reverse: Reverse | None = None,
        schema: Any = None,
    ) -> None:
        """Take the model's ``sender_field``, ``reverse`` and ``schema`` where the event sets
        none."""
        if self.schema is None:
            self.schema = schema
        if self.sender_field is None:
            self.sender_field = _check_sender_field(sender_field)
        if self.reverse is None:
            self.reverse = _check_reverse(reverse)

    def _dispatches_on(self, trigger: Trigger) -> ModelEvent:
        if trigger not in self.triggers:
            self.triggers.append(trigger)
            for model, (binding, _handlers) in list(self._connections.items()):
                self._connect(model, binding, trigger)
        return self

    def dispatches_on_create(self) -> ModelEvent:
        """Send when an instance is created."""
        return self._dispatches_on(Trigger("create"))

    def dispatches_on_change(self) -> ModelEvent:
        """Send when an instance is changed."""
        return self._dispatches_on(Trigger("change"))

    def dispatches_on_delete(self) -> ModelEvent:
        """Send when an instance is deleted."""
        return self._dispatches_on(Trigger("delete"))

    def dispatches_on_m2m_add(self, field: str) -> ModelEvent:
        """Send when objects are added to the many-to-many ``field``."""
        return self._dispatches_on(Trigger("m2m_add", field))

    def dispatches_on_m2m_remove(self, field: str) -> ModelEvent:
        """Send when objects are removed from the many-to-many ``field``."""
        return self._dispatches_on(Trigger("m2m_remove", field))

    def dispatches_on_m2m_clear(self, field: str) -> ModelEvent:
        """Send when the many-to-many ``field`` is cleared."""
        return self._dispatches_on(Trigger("m2m_clear", field))

    # -- connection to a model -------------------------------------------------------------

    def connect_model(self, model: type, binding: ModelBinding | None = None) -> None:
        """Connect every declared trigger for ``model`` through ``binding`` (the app's by default).

        Raises:
            InvalidModelEvent: the event declares no ``dispatches_on_*``.
        """
        if not self.triggers:
            raise InvalidModelEvent(
                f"{self!r} declares no dispatch: add .dispatches_on_create(), "
                ".dispatches_on_change(), .dispatches_on_delete() or a dispatches_on_m2m_*()"
            )
        binding = binding if binding is not None else self.app.binding
        current = self._connections.get(model)
        if current is not None and current[0] is not binding:
            self.disconnect_model(model)
        for trigger in self.triggers:
            self._connect(model, binding, trigger)
        if not self._formatted:
            add_type_provider(self)

    def belongs_to(self, app: Thorn) -> bool:
        """Whether this event's type goes in ``app``'s catalog: the event's own app, else
        the app whose binding connects it to a model."""
        if self.event._app is not None:
            return self.event._app is app
        return any(binding is app.binding for binding, _ in self._connections.values())

    def event_types(self) -> list[EventType]:
        """The catalog type of this event: the message ``{"event", "ref", "sender", "data"}``
        with ``data`` as declared, or generated from the first connected model's fields.

        No type for a name formatted per instance, an event connected to no model, or one with
        neither a schema nor a model an adapter can describe.
        """
        if self._formatted or not self._connections:
            return []  # a disconnected event sends nothing
        source = self.schema
        loose = False
        if source is None:
            source, loose = next(iter(self._connections)), True
        try:
            data = derive_schema(source)
        except InvalidEventType:
            if loose:
                return []  # a model no adapter describes: not in the catalog
            raise
        if loose:
            data = {**data, "additionalProperties": True}
            data.pop("required", None)
        schema = {
            "type": "object",
            "properties": {
                "event": {"const": self.name},
                "ref": {"type": ["string", "null"], "format": "uri"},
                "sender": {"type": ["string", "integer", "null"]},
                "data": data,
            },
            "required": ["event", "ref", "sender", "data"],
            "additionalProperties": False,
        }
        models = ", ".join(model.__name__ for model in self._connections)
        return [
            EventType(
                name=self.name,
                version=self.event.version or "1",
                schema=schema,
                description=self.description or (f"A change of {models}." if models else ""),
                examples=[
                    {"event": self.name, "ref": None, "sender": None, "data": example}
                    for example in self.examples
                ],
            )
        ]

    def _connect(self, model: type, binding: ModelBinding, trigger: Trigger) -> None:
        _binding, handlers = self._connections.setdefault(model, (binding, {}))
        if trigger in handlers:
            return
        handler: ChangeHandler = functools.partial(self._handle, binding, trigger)
        binding.connect(
            model,
            trigger,
            handler,
            needs_previous=self.uses_transitions and trigger.hook == "change",
        )
        handlers[trigger] = handler

    def disconnect_model(self, model: type) -> None:
        """Disconnect every trigger of this event from ``model``."""
        connection = self._connections.pop(model, None)
        if connection is None:
            return
        binding, handlers = connection
        for trigger, handler in handlers.items():
            binding.disconnect(model, trigger, handler)

    @property
    def models(self) -> list[type]:
        """The models this event is connected to."""
        return list(self._connections)

    def binding_for(self, model: type) -> ModelBinding:
        """The binding ``model`` is connected through, else the app's."""
        connection = self._connections.get(model)
        return connection[0] if connection is not None else self.app.binding

    # -- hooks -----------------------------------------------------------------------------

    def should_dispatch(self, instance: Any, previous: Any = MISSING) -> bool:
        """Whether ``instance`` (changed from ``previous``) passes the filters."""
        return self.filter is None or self.filter(instance, previous)

    def _guarded(self, instance: Any, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:
            if self.propagate_errors:
                raise
            logger.exception(
                "Model event %r failed for %r; ignored because propagate_errors=False",
                self.name,
                instance,
            )

    def _handle(self, binding: ModelBinding, trigger: Trigger, change: ModelChange) -> None:
        """Called by the binding when ``trigger`` fires: filter now, send now or after commit."""
        self._guarded(change.instance, lambda: self._handle_change(binding, trigger, change))

    def _handle_change(self, binding: ModelBinding, trigger: Trigger, change: ModelChange) -> None:
        instance = change.instance
        if trigger.hook == "change" and change.previous is MISSING and self.uses_transitions:
            raise ImproperlyConfigured(
                f"{self!r} has now_ filters, but the binding gave no previous values for a "
                f"change of {instance!r} (with the generic binding: send changed with "
                "previous= or load_previous=)"
            )
        if not self.should_dispatch(instance, change.previous):
            return
        message = self.prepare_from_instance(instance, context=change.context, binding=binding)
        if self.event.app.store(message):
            # Stored in the transaction of the change: it commits, or rolls back, with it,
            # and the relay sends it after commit. With no transaction open on the outbox's
            # database, the event goes the usual way.
            return
        if self.honors_transaction:
            binding.on_commit(lambda: self._guarded(instance, lambda: self.event.submit(message)))
        else:
            self.event.submit(message, store=False)

    # -- building and sending --------------------------------------------------------------

    def format_name(self, instance: Any) -> str:
        """The event name for ``instance``: the declared name with its fields formatted.

        Raises:
            InvalidEventName: the formatted name is malformed.
        """
        if not self._formatted:
            return self.name
        name = self.name.format(instance)
        try:
            return validate_event_name(name)
        except InvalidEventName as exc:
            raise InvalidEventName(f"{exc} (formatted from {self.name!r})") from None

    def get_absolute_url(self, instance: Any, binding: ModelBinding | None = None) -> str | None:
        """The ``ref`` of ``instance``: from ``reverse``, else its ``get_absolute_url()``.

        A relative URL is joined to ``THORN_BASE_URL`` when it is set, else made absolute
        by the binding's optional ``absolute_url(url)`` method (see
        :class:`~thorn_core.binding.ModelBinding` and :func:`~thorn_core.reversers.absolute_ref`).
        """
        reverse = self.reverse
        binding = binding or self.binding_for(type(instance))
        base_url = self.app.settings.base_url
        if isinstance(reverse, model_reverser):
            return reverse(instance, binding, base_url)
        url: str | None
        if reverse is not None:
            url = reverse(instance)
        else:
            method = getattr(instance, "get_absolute_url", None)
            if not callable(method):
                return None
            url = method()
        return absolute_ref(url, base_url, binding)

    def instance_data(self, instance: Any) -> Any:
        """The ``data`` for ``instance``: ``webhooks.payload()``, or ``webhook_payload()``."""
        webhooks = _webhooks_of(instance)
        if webhooks is not None:
            return webhooks.payload(instance)
        return _delegate(instance, "webhook_payload")

    def instance_headers(self, instance: Any) -> Mapping[str, str] | None:
        """Extra headers for ``instance``: ``webhooks.headers()``, or ``webhook_headers()``."""
        webhooks = _webhooks_of(instance)
        if webhooks is not None:
            return webhooks.headers(instance)
        headers: Mapping[str, str] | None = _delegate(instance, "webhook_headers")
        return headers

    def instance_sender(self, instance: Any) -> Any:
        """The sender of ``instance``: the value at ``sender_field``, or None."""
        if self.sender_field is None:
            return None
        return resolve_path(instance, self.sender_field)

    def to_message(
        self,
        instance: Any,
        data: Any = None,
        sender: Any = None,
        *,
        name: str | None = None,
        binding: ModelBinding | None = None,
    ) -> dict[str, Any]:
        """The wire format ``{"event", "ref", "sender", "data"}`` for ``instance``."""
        return {
            "event": name if name is not None else self.format_name(instance),
            "ref": self.get_absolute_url(instance, binding),
            "sender": sender_key(sender),
            "data": {} if data is None else data,
        }

    def prepare(
        self,
        instance: Any,
        data: Any = None,
        sender: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        subscribers: Any = None,
        binding: ModelBinding | None = None,
    ) -> EventMessage:
        """Build the message ``send`` hands to the dispatcher."""
        name = self.format_name(instance)
        return self.event.prepare(
            self.to_message(instance, data, sender, name=name, binding=binding),
            sender,
            headers=headers,
            timeout=timeout,
            context=context,
            subscribers=subscribers,
            name=name,
        )

    def prepare_from_instance(
        self,
        instance: Any,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        subscribers: Any = None,
        binding: ModelBinding | None = None,
    ) -> EventMessage:
        """Build the message for ``instance`` with its payload, headers and sender.

        Header names are compared without case; the more specific one wins: the event's
        ``headers=``, then the model's ``headers()`` callback for this instance, then the
        ``headers`` given here.

        Raises:
            TypeError, ValueError: the callback's headers are not a mapping of strings, or
                hold a malformed or reserved name (the message names the model).
        """
        own = self.instance_headers(instance)
        if own:
            own = _headers(own, f"the webhook headers of {type(instance).__qualname__}")
            if headers:
                own = _merge_headers(own, _headers(headers, "send() headers"))
        return self.prepare(
            instance,
            self.instance_data(instance),
            self.instance_sender(instance),
            headers=own or headers,
            timeout=timeout,
            context=context,
            subscribers=subscribers,
            binding=binding,
        )

    def send(
        self,
        instance: Any,
        data: Any = None,
        sender: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        subscribers: Any = None,
        on_success: Callable[[Delivery], Any] | None = None,
        on_error: Callable[[Delivery, BaseException], Any] | None = None,
        on_timeout: Callable[[Delivery, BaseException], Any] | None = None,
    ) -> SendResult:
        """Send the event for ``instance`` now, with ``data`` as the message's ``data``.

        Filters, transactions and ``propagate_errors`` apply to hooks, not to this call.

        Raises:
            SerializationError: the message cannot be encoded; nothing is sent.
            InvalidEventName: the name formatted with ``instance`` is malformed.
        """
        message = self.prepare(
            instance,
            data,
            sender,
            headers=headers,
            timeout=timeout,
            context=context,
            subscribers=subscribers,
        )
        return self.event.submit(
            message, on_success=on_success, on_error=on_error, on_timeout=on_timeout
        )

    def send_from_instance(
        self,
        instance: Any,
        context: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        subscribers: Any = None,
        on_success: Callable[[Delivery], Any] | None = None,
        on_error: Callable[[Delivery, BaseException], Any] | None = None,
        on_timeout: Callable[[Delivery, BaseException], Any] | None = None,
    ) -> SendResult:
        """Send now as a hook would: data, headers and sender come from the instance.

        Filters are not applied; see :meth:`should_dispatch`.
        """
        message = self.prepare_from_instance(
            instance, headers=headers, timeout=timeout, context=context, subscribers=subscribers
        )
        return self.event.submit(
            message, on_success=on_success, on_error=on_error, on_timeout=on_timeout
        )

    def __repr__(self) -> str:
        return f"<ModelEvent {self.name!r}>"


def _delegate(instance: Any, method: str) -> Any:
    function = getattr(instance, method, None)
    return function() if callable(function) else None


def _webhooks_of(instance: Any) -> ModelWebhooks | None:
    webhooks = getattr(type(instance), "webhooks", None)
    return webhooks if isinstance(webhooks, ModelWebhooks) else None


class ModelWebhooks:
    """What ``@webhook_model`` puts at ``Model.webhooks``: the model's events and callbacks.

    The body of the model's inner ``class webhooks:`` becomes a subclass of this one, so its
    ``payload`` and ``headers`` methods override the defaults below, which call the model's
    ``webhook_payload()`` and ``webhook_headers()`` when it has them.
    """

    #: The default sender path of the model's events.
    sender_field: str | None = None
    #: The default ``ref`` of the model's events.
    reverse: Reverse | None = None

    def __init__(self, model: type, events: Mapping[str, ModelEvent]) -> None:
        self.model = model
        #: The events by attribute name: ``Model.webhooks.events['on_create']``.
        self.events: dict[str, ModelEvent] = dict(events)

    def payload(self, instance: Any) -> Any:
        """The ``data`` of a message about ``instance`` (``{}`` when None)."""
        return _delegate(instance, "webhook_payload")

    def headers(self, instance: Any) -> Mapping[str, str] | None:
        """Extra HTTP headers for a message about ``instance``."""
        headers: Mapping[str, str] | None = _delegate(instance, "webhook_headers")
        return headers

    def __getitem__(self, key: str) -> ModelEvent:
        try:
            return self.events[key]
        except KeyError:
            raise KeyError(self._unknown(key)) from None

    def __setitem__(self, key: str, event: ModelEvent) -> None:
        """Thorn 1.x's ``Model.webhooks[name] = event`` (deprecated): connect ``event`` to the
        model, replacing (and disconnecting) the event of that name.

        Raises:
            InvalidModelEvent: ``event`` is not a ModelEvent, or ``key`` is not an ``on_*``
                name (or declares no dispatch, see :func:`webhook_model`).
        """
        warnings.warn(
            f"{self.model.__qualname__}.webhooks[{key!r}] = ... is deprecated: declare "
            f"{key} = ModelEvent(...) in the model's class webhooks: (or "
            f"@webhook_model({key}=...))",
            DeprecationWarning,
            stacklevel=2,
        )
        if not isinstance(key, str) or not key.startswith("on_"):
            raise InvalidModelEvent(
                f"{self.model.__qualname__}.webhooks[{key!r}]: event names start with 'on_'"
            )
        event = _declared_event(self.model, key, event)
        binding = next((e.binding_for(self.model) for e in self.events.values()), None)
        old = self.events.pop(key, None)
        if old is not None and old is not event:
            old.disconnect_model(self.model)
        event.use_defaults(sender_field=self.sender_field, reverse=self.reverse)
        event.connect_model(self.model, binding)
        self.events[key] = event

    def __delitem__(self, key: str) -> None:
        """Thorn 1.x's ``del Model.webhooks[name]`` (deprecated): disconnect that event.

        Raises:
            KeyError: the model has no event of that name (the message lists those it has).
        """
        warnings.warn(
            f"del {self.model.__qualname__}.webhooks[{key!r}] is deprecated: remove {key} from "
            "the model's class webhooks:, or call Model.webhooks.events[name].disconnect_model("
            "Model) for a while",
            DeprecationWarning,
            stacklevel=2,
        )
        event = self.events.pop(key, None)
        if event is None:
            raise KeyError(self._unknown(key))
        event.disconnect_model(self.model)

    def __contains__(self, key: object) -> bool:
        return key in self.events

    def _unknown(self, key: object) -> str:
        return (
            f"{self.model.__qualname__}.webhooks has no event {key!r}; it has "
            f"{', '.join(self.events) or 'none'}"
        )

    def __repr__(self) -> str:
        return f"<webhooks of {self.model.__qualname__}: {', '.join(self.events)}>"


def _declared_event(model: type, attribute: str, event: object) -> ModelEvent:
    """``event`` declared as ``model.webhooks.<attribute>``, with its default dispatch.

    Raises:
        InvalidModelEvent: not a ModelEvent, or no dispatch declared nor implied by the name.
    """
    if not isinstance(event, ModelEvent):
        raise InvalidModelEvent(
            f"{model.__qualname__}.webhooks.{attribute} must be a ModelEvent, got {event!r}"
        )
    if not event.triggers:
        default = _DEFAULT_TRIGGERS.get(attribute)
        if default is None:
            raise InvalidModelEvent(
                f"{model.__qualname__}.webhooks.{attribute} declares no dispatch: add "
                ".dispatches_on_change() (or _create, _delete, _m2m_add(field)...); only "
                "on_create, on_change and on_delete have one by default"
            )
        event._dispatches_on(default)
    return event


def _augment(
    model: _ModelT,
    *,
    sender_field: str | None,
    reverse: Reverse | None,
    binding: ModelBinding | None,
    events: Mapping[str, ModelEvent | None],
) -> _ModelT:
    inner = model.__dict__.get("webhooks")
    if inner is not None and not isinstance(inner, type):
        raise InvalidModelEvent(
            f"{model.__qualname__}.webhooks must be a class, got {type(inner).__name__}"
        )
    namespace = {} if inner is None else dict(vars(inner))
    declared: dict[str, Any] = {k: v for k, v in namespace.items() if k.startswith("on_")}
    declared.update(events)
    if inner is not None and issubclass(inner, ModelWebhooks):
        webhooks_class: type[ModelWebhooks] = inner
    else:
        body = {
            k: v
            for k, v in namespace.items()
            if not k.startswith("on_") and k not in ("__dict__", "__weakref__")
        }
        webhooks_class = type("webhooks", (ModelWebhooks,), body)
    found: dict[str, ModelEvent] = {}
    for attribute, event in declared.items():
        if event is None:
            continue
        found[attribute] = _declared_event(model, attribute, event)
    webhooks = webhooks_class(model, found)
    if sender_field is not None:
        webhooks.sender_field = _check_sender_field(sender_field)
    if reverse is not None:
        webhooks.reverse = _check_reverse(reverse)
    for event in found.values():
        event.use_defaults(
            sender_field=webhooks.sender_field,
            reverse=webhooks.reverse,
            schema=getattr(webhooks, "schema", None),
        )
        event.connect_model(model, binding)
    setattr(model, "webhooks", webhooks)  # noqa: B010 -- mypy does not know the attribute
    return model


@overload
def webhook_model(model: _ModelT, /) -> _ModelT: ...


@overload
def webhook_model(
    *,
    sender_field: str | None = None,
    reverse: Reverse | None = None,
    binding: ModelBinding | None = None,
    **events: ModelEvent | None,
) -> Callable[[_ModelT], _ModelT]: ...


def webhook_model(
    model: _ModelT | None = None,
    /,
    *,
    sender_field: str | None = None,
    reverse: Reverse | None = None,
    binding: ModelBinding | None = None,
    **events: ModelEvent | None,
) -> _ModelT | Callable[[_ModelT], _ModelT]:
    """Give a model class webhooks: ``@webhook_model`` or ``@webhook_model(sender_field=...)``.

    The events are the ``on_*`` attributes of the model's inner ``class webhooks:`` (and any
    ``on_*`` keyword). ``on_create``, ``on_change`` and ``on_delete`` dispatch on their hook
    unless they declare otherwise; every other event must declare a ``dispatches_on_*``. The
    inner class's other attributes (``payload``, ``headers``, ``sender_field``, ``reverse``)
    are kept. Afterwards ``Model.webhooks.events`` maps names to events.

    Args:
        sender_field: the default sender path of the model's events.
        reverse: the default ``ref`` of the model's events.
        binding: the ORM binding to connect through (the event's app's by default).
        **events: more ``on_*`` events.

    Raises:
        InvalidModelEvent: ``webhooks`` is not a class, an ``on_*`` is not a ModelEvent, or an
            event other than on_create/on_change/on_delete declares no dispatch.
        TypeError: a keyword is not an option nor an ``on_*`` event.
    """
    unknown = [key for key in events if not key.startswith("on_")]
    if unknown:
        raise TypeError(
            f"webhook_model() got unexpected keyword argument(s) {', '.join(unknown)}; "
            "events are named on_*"
        )

    def decorate(cls: _ModelT) -> _ModelT:
        if not isinstance(cls, type):
            raise TypeError(f"@webhook_model decorates a class, got {cls!r}")
        return _augment(
            cls, sender_field=sender_field, reverse=reverse, binding=binding, events=events
        )

    if model is None:
        return decorate
    return decorate(model)
