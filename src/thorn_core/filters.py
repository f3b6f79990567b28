"""Model event filters: ``state__eq='PUBLISHED'``, transitions (``now_eq``) and ``Q`` algebra.

A keyword filter is ``<path>__<operator>=<value>``: the path names attributes joined by ``__``
(``author__account__user``) and the operator is one of :data:`OPERATORS`, optionally prefixed
with ``now_`` to match a *transition*: the new value satisfies the operator and the previous
value did not (or there was none). Malformed filters raise :class:`~thorn_core.InvalidFilter`
when they are declared, never silently match nothing.
"""

from __future__ import annotations

import difflib
import enum
import operator
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, Final, Literal

import attrs

from .exceptions import InvalidFilter
from .paths import AttributePath, read_path

__all__ = ["MISSING", "OPERATORS", "TRANSITION_PREFIX", "Condition", "Missing", "Q", "parse_lookup"]

#: The prefix that turns an operator into a transition: ``state__now_eq='PUBLISHED'``.
TRANSITION_PREFIX: Final = "now_"


class Missing(enum.Enum):
    """The type of :data:`MISSING`."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


#: "There is no previous version": what a transition compares with on create (and delete).
MISSING: Final = Missing.MISSING

Test = Callable[[Any, Any], bool]


def _startswith(value: Any, prefix: Any) -> bool:
    return bool(value.startswith(prefix))


def _endswith(value: Any, suffix: Any) -> bool:
    return bool(value.endswith(suffix))


def _any_operand(_operand: Any) -> str | None:
    return None


@attrs.frozen
class _Operator:
    """One operator: its test ``test(value, operand)`` and what it accepts."""

    test: Test
    description: str
    #: A value of None does not satisfy it (``None > 3`` is not an error but a non-match).
    none_fails: bool = False
    #: Why an operand is unacceptable, or None.
    check: Callable[[Any], str | None] = _any_operand


def _not_none(operand: Any) -> str | None:
    return "needs a value to compare with, not None" if operand is None else None


def _collection(operand: Any) -> str | None:
    if isinstance(operand, (str, bytes)) or not isinstance(operand, Collection):
        return f"needs a collection such as a set or a list, not {type(operand).__name__}"
    return None


def _affix(operand: Any) -> str | None:
    if isinstance(operand, (str, bytes)):
        return None
    if isinstance(operand, tuple) and operand and all(isinstance(o, (str, bytes)) for o in operand):
        return None
    return f"needs a string (or a tuple of strings), not {type(operand).__name__}"


#: The operators, in the order the documentation lists them.
OPERATORS: Final[Mapping[str, _Operator]] = {
    "eq": _Operator(operator.eq, "equal to the value (``eq=True``: truthy, ``eq=False``: falsy)"),
    "ne": _Operator(operator.ne, "not equal (``ne=True``: falsy, ``ne=False``: truthy)"),
    "gt": _Operator(operator.gt, "greater than", none_fails=True, check=_not_none),
    "gte": _Operator(operator.ge, "greater than or equal to", none_fails=True, check=_not_none),
    "lt": _Operator(operator.lt, "less than", none_fails=True, check=_not_none),
    "lte": _Operator(operator.le, "less than or equal to", none_fails=True, check=_not_none),
    "is": _Operator(operator.is_, "identical to (``is=None``)"),
    "is_not": _Operator(operator.is_not, "not identical to"),
    "in": _Operator(lambda a, b: a in b, "a member of the collection", check=_collection),
    "not_in": _Operator(
        lambda a, b: a not in b, "not a member of the collection", check=_collection
    ),
    "contains": _Operator(operator.contains, "contains the value", none_fails=True),
    "startswith": _Operator(_startswith, "starts with", none_fails=True, check=_affix),
    "endswith": _Operator(_endswith, "ends with", none_fails=True, check=_affix),
}

_TRUTHY = _Operator(lambda a, _b: bool(a), "truthy")
_FALSY = _Operator(lambda a, _b: not a, "falsy")

_ALL_NAMES: Final = (*OPERATORS, *(TRANSITION_PREFIX + name for name in OPERATORS))


def _known() -> str:
    return ", ".join(OPERATORS) + f" (each also as {TRANSITION_PREFIX}<operator>)"


def _effective(name: str, operand: Any) -> _Operator:
    """``eq=True``/``ne=False`` test truthiness and ``eq=False``/``ne=True`` falsiness."""
    if name in ("eq", "ne") and isinstance(operand, bool):
        return _TRUTHY if (name == "eq") is operand else _FALSY
    return OPERATORS[name]


@attrs.frozen
class Condition:
    """One parsed keyword filter, callable with an instance and its previous version."""

    #: The keyword as written, such as ``author__name__now_startswith``.
    lookup: str
    path: AttributePath
    #: The operator name without ``now_``.
    operator: str
    operand: Any
    transition: bool = False
    _op: _Operator = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_op", _effective(self.operator, self.operand))

    def test(self, value: Any) -> bool:
        """Whether ``value`` satisfies the operator (not the transition)."""
        op = self._op
        if value is None and op.none_fails:
            return False
        return bool(op.test(value, self.operand))

    def __call__(self, instance: Any, previous: Any = MISSING) -> bool:
        """Whether ``instance`` (changed from ``previous``) matches."""
        if not self.test(read_path(instance, self.path)):
            return False
        if not self.transition or previous is MISSING:
            return True
        return not self.test(read_path(previous, self.path))


def parse_lookup(lookup: str, operand: Any) -> Condition:
    """Parse ``path__operator=operand`` into a :class:`Condition`.

    Raises:
        InvalidFilter: no operator, an unknown operator (the message suggests the closest),
            a malformed path, or an operand the operator cannot use.
    """
    head, sep, name = lookup.rpartition("__")
    if not sep or not head:
        raise InvalidFilter(
            f"filter {lookup!r} has no operator: did you mean '{lookup}__eq'? Operators: {_known()}"
        )
    transition = name.startswith(TRANSITION_PREFIX)
    base = name[len(TRANSITION_PREFIX) :] if transition else name
    if base not in OPERATORS:
        close = difflib.get_close_matches(name, _ALL_NAMES, n=1)
        hint = f"'{head}__{close[0]}'" if close else f"'{lookup}__eq'"
        raise InvalidFilter(
            f"filter {lookup!r}: {name!r} is not an operator; did you mean {hint}? "
            f"Operators: {_known()}"
        )
    segments = tuple(head.split("__"))
    for segment in segments:
        if not segment.isidentifier():
            raise InvalidFilter(f"filter {lookup!r}: {segment!r} is not an attribute name")
    problem = OPERATORS[base].check(operand)
    if problem is not None:
        raise InvalidFilter(f"filter {lookup!r}: {base} {problem}")
    return Condition(lookup, segments, base, operand, transition)


Connector = Literal["AND", "OR"]


class Q:
    """A filter tree: keyword filters joined by AND, combined with ``&``, ``|`` and ``~``.

    ``Q(state__eq='PUBLISHED') | Q(state__eq='PREVIEW')`` matches either state;
    ``~Q(title__startswith='The')`` negates. Call it with an instance (and its previous
    version, for transitions) to evaluate it. An empty ``Q()`` matches everything.

    Positional arguments are other ``Q`` objects or objects shaped like Django's ``Q``
    (``children``, ``connector``, ``negated``), which are converted.

    Raises:
        InvalidFilter: for a malformed keyword filter or positional argument.
    """

    AND: Final = "AND"
    OR: Final = "OR"

    __slots__ = ("children", "connector", "negated")

    children: tuple[Q | Condition, ...]
    connector: Connector
    negated: bool

    def __init__(
        self,
        *filters: Any,
        _connector: Connector = "AND",
        _negated: bool = False,
        **lookups: Any,
    ) -> None:
        if _connector not in (self.AND, self.OR):
            raise InvalidFilter(f"Q connector must be 'AND' or 'OR', got {_connector!r}")
        self.children = (
            *(self.coerce(f) for f in filters),
            *(parse_lookup(key, value) for key, value in lookups.items()),
        )
        self.connector = _connector
        self.negated = bool(_negated)

    @classmethod
    def coerce(cls, node: Any) -> Q:
        """Return ``node`` as a ``Q``: itself, or a converted Django-style ``Q`` node.

        Raises:
            InvalidFilter: ``node`` is not a filter tree.
        """
        if isinstance(node, Q):
            return node
        try:
            children, connector, negated = node.children, node.connector, node.negated
        except AttributeError:
            raise InvalidFilter(
                f"a positional filter must be a Q object, got {type(node).__name__}: {node!r}"
            ) from None
        converted = cls(_connector=connector, _negated=negated)
        parts: list[Q | Condition] = []
        for child in children:
            if isinstance(child, tuple) and len(child) == 2 and isinstance(child[0], str):
                parts.append(parse_lookup(child[0], child[1]))
            else:
                parts.append(cls.coerce(child))
        converted.children = tuple(parts)
        return converted

    @classmethod
    def _node(cls, connector: Connector, negated: bool, children: tuple[Q | Condition, ...]) -> Q:
        node = cls(_connector=connector, _negated=negated)
        node.children = children
        return node

    def _combine(self, other: object, connector: Connector) -> Q:
        if not isinstance(other, Q):
            other = self.coerce(other)
        if not other.children:
            return self
        if not self.children:
            return other
        parts: list[Q | Condition] = []
        for side in (self, other):
            if not side.negated and (side.connector == connector or len(side.children) == 1):
                parts.extend(side.children)
            else:
                parts.append(side)
        return self._node(connector, False, tuple(parts))

    def __and__(self, other: object) -> Q:
        return self._combine(other, self.AND)

    def __or__(self, other: object) -> Q:
        return self._combine(other, self.OR)

    def __invert__(self) -> Q:
        return self._node(self.connector, not self.negated, self.children)

    def __call__(self, instance: Any, previous: Any = MISSING) -> bool:
        """Whether ``instance`` (changed from ``previous``) matches this tree."""
        gate = all if self.connector == self.AND else any
        matched = gate(child(instance, previous) for child in self.children)
        return not matched if self.negated else matched

    def conditions(self) -> Iterator[Condition]:
        """Every keyword filter in the tree, depth first."""
        for child in self.children:
            if isinstance(child, Q):
                yield from child.conditions()
            else:
                yield child

    @property
    def uses_transitions(self) -> bool:
        """Whether a ``now_`` filter is in the tree (so previous values are needed)."""
        return any(condition.transition for condition in self.conditions())

    def __bool__(self) -> bool:
        return bool(self.children)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Q):
            return NotImplemented
        return (self.connector, self.negated, self.children) == (
            other.connector,
            other.negated,
            other.children,
        )

    def __hash__(self) -> int:
        return hash((self.connector, self.negated, self.children))

    def describe(self) -> str:
        """The tree as text: ``(OR: state__eq='A', (NOT (AND: title__startswith='The')))``."""
        parts = ", ".join(
            child.describe() if isinstance(child, Q) else f"{child.lookup}={child.operand!r}"
            for child in self.children
        )
        body = f"({self.connector}: {parts})"
        return f"(NOT {body})" if self.negated else body

    def __repr__(self) -> str:
        return f"<Q: {self.describe()}>"
