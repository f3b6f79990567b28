"""Model event filters: every operator with and without ``now_``, Q algebra, definition errors."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from thorn_core import InvalidFilter, ModelEvent, Q
from thorn_core.filters import MISSING, OPERATORS, parse_lookup

#: operator, operand, a value that satisfies it, a value that does not.
TABLE: list[tuple[str, Any, Any, Any]] = [
    ("eq", "PUBLISHED", "PUBLISHED", "DRAFT"),
    ("ne", "DRAFT", "PUBLISHED", "DRAFT"),
    ("gt", 5, 6, 5),
    ("gte", 5, 5, 4),
    ("lt", 5, 4, 5),
    ("lte", 5, 5, 6),
    ("is", None, None, 0),
    ("is_not", None, 0, None),
    ("in", {"A", "B"}, "A", "C"),
    ("not_in", {"A", "B"}, "C", "A"),
    ("contains", "red", ["red", "blue"], ["blue"]),
    ("startswith", "The", "The End", "An End"),
    ("endswith", "End", "The End", "The Start"),
]
IDS = [row[0] for row in TABLE]


def obj(**fields: Any) -> SimpleNamespace:
    """A plain object with the given attributes."""
    return SimpleNamespace(**fields)


class TestOperatorTable:
    """Each operator of the table, plain and as a transition."""

    def test_table_covers_every_operator(self) -> None:
        """The table below lists exactly the operators Thorn documents."""
        assert set(IDS) == set(OPERATORS) == {
            "eq", "ne", "gt", "gte", "lt", "lte", "is", "is_not",
            "in", "not_in", "contains", "startswith", "endswith",
        }  # fmt: skip

    @pytest.mark.parametrize(("op", "operand", "yes", "no"), TABLE, ids=IDS)
    def test_operator(self, op: str, operand: Any, yes: Any, no: Any) -> None:
        """The operator matches a satisfying value and not another."""
        q = Q(**{f"value__{op}": operand})
        assert q(obj(value=yes)) is True
        assert q(obj(value=no)) is False

    @pytest.mark.parametrize(("op", "operand", "yes", "no"), TABLE, ids=IDS)
    def test_transition_into(self, op: str, operand: Any, yes: Any, no: Any) -> None:
        """now_<op> matches when the value starts to satisfy the operator."""
        q = Q(**{f"value__now_{op}": operand})
        assert q(obj(value=yes), obj(value=no)) is True

    @pytest.mark.parametrize(("op", "operand", "yes", "no"), TABLE, ids=IDS)
    def test_transition_already_satisfied(self, op: str, operand: Any, yes: Any, no: Any) -> None:
        """now_<op> does not match when the previous value satisfied it already."""
        q = Q(**{f"value__now_{op}": operand})
        assert q(obj(value=yes), obj(value=yes)) is False

    @pytest.mark.parametrize(("op", "operand", "yes", "no"), TABLE, ids=IDS)
    def test_transition_out_of(self, op: str, operand: Any, yes: Any, no: Any) -> None:
        """now_<op> does not match when the new value does not satisfy it."""
        q = Q(**{f"value__now_{op}": operand})
        assert q(obj(value=no), obj(value=yes)) is False
        assert q(obj(value=no), obj(value=no)) is False

    @pytest.mark.parametrize(("op", "operand", "yes", "no"), TABLE, ids=IDS)
    def test_transition_without_previous(self, op: str, operand: Any, yes: Any, no: Any) -> None:
        """With no previous version (a create), now_<op> is the plain operator."""
        q = Q(**{f"value__now_{op}": operand})
        assert q(obj(value=yes), MISSING) is True
        assert q(obj(value=no)) is False

    def test_previous_values_may_be_a_mapping(self) -> None:
        """The previous version can be a mapping of field values."""
        q = Q(state__now_eq="PUBLISHED")
        assert q(obj(state="PUBLISHED"), {"state": "DRAFT"}) is True
        assert q(obj(state="PUBLISHED"), {"state": "PUBLISHED"}) is False


class TestTruthiness:
    """``eq``/``ne`` with True or False test truthiness, as Thorn documents."""

    @pytest.mark.parametrize("value", [True, 1, "x", [0]])
    def test_eq_true_matches_truthy(self, value: Any) -> None:
        """__eq=True matches any truthy value, not only True."""
        assert Q(flag__eq=True)(obj(flag=value)) is True
        assert Q(flag__ne=False)(obj(flag=value)) is True
        assert Q(flag__eq=False)(obj(flag=value)) is False

    @pytest.mark.parametrize("value", [False, 0, "", None, []])
    def test_eq_false_matches_falsy(self, value: Any) -> None:
        """__eq=False matches any falsy value, not only False."""
        assert Q(flag__eq=False)(obj(flag=value)) is True
        assert Q(flag__ne=True)(obj(flag=value)) is True
        assert Q(flag__eq=True)(obj(flag=value)) is False

    def test_eq_one_is_equality(self) -> None:
        """__eq=1 compares by equality: 2 is truthy but not equal to 1."""
        assert Q(count__eq=1)(obj(count=2)) is False

    def test_now_eq_true_is_becoming_truthy(self) -> None:
        """__now_eq=True matches a change from falsy to truthy only."""
        q = Q(active__now_eq=True)
        assert q(obj(active="yes"), obj(active="")) is True
        assert q(obj(active="yes"), obj(active=1)) is False


class TestNone:
    """None is an ordinary value for equality and identity, and satisfies no ordering."""

    @pytest.mark.parametrize(
        "lookup",
        ["value__gt", "value__gte", "value__lt", "value__lte"],
    )
    def test_ordering_with_none_does_not_match(self, lookup: str) -> None:
        """A None value satisfies no ordering operator (no TypeError)."""
        assert Q(**{lookup: 3})(obj(value=None)) is False

    @pytest.mark.parametrize(
        ("lookup", "operand"),
        [("value__contains", "a"), ("value__startswith", "a"), ("value__endswith", "a")],
    )
    def test_string_operators_with_none_do_not_match(self, lookup: str, operand: str) -> None:
        """A None value does not contain, start or end with anything."""
        assert Q(**{lookup: operand})(obj(value=None)) is False

    def test_transition_from_none(self) -> None:
        """A change from None to a satisfying value is a transition."""
        assert Q(amount__now_gt=100)(obj(amount=150), obj(amount=None)) is True

    def test_is_none(self) -> None:
        """__is=None matches None only."""
        assert Q(deleted_at__is=None)(obj(deleted_at=None)) is True
        assert Q(deleted_at__is=None)(obj(deleted_at=0)) is False


class TestNestedAttributes:
    """Paths joined by ``__`` read nested attributes."""

    def test_nested(self) -> None:
        """author__account__user__eq reads instance.author.account.user."""
        article = obj(author=obj(account=obj(user="ada")))
        assert Q(author__account__user__eq="ada")(article) is True
        assert Q(author__account__user__eq="bob")(article) is False

    def test_none_on_the_way_gives_none(self) -> None:
        """A None in the middle of the path makes the value None, as a null join would."""
        article = obj(author=None)
        assert Q(author__account__user__is=None)(article) is True
        assert Q(author__account__user__eq="ada")(article) is False

    def test_missing_attribute_raises(self) -> None:
        """A misspelt attribute is an error when evaluated, not a silent non-match."""
        with pytest.raises(AttributeError):
            Q(autor__name__eq="ada")(obj(author=obj(name="ada")))

    def test_nested_transition(self) -> None:
        """Transitions read the same path on the previous version."""
        q = Q(author__name__now_eq="ada")
        assert q(obj(author=obj(name="ada")), obj(author=obj(name="bob"))) is True


class TestQAlgebra:
    """Q objects combine with &, | and ~."""

    def test_keywords_combine_with_and(self) -> None:
        """Several keyword filters must all match."""
        q = Q(state__eq="PUBLISHED", title__startswith="The")
        assert q(obj(state="PUBLISHED", title="The Art")) is True
        assert q(obj(state="PUBLISHED", title="Art")) is False
        assert q(obj(state="DRAFT", title="The Art")) is False

    def test_or(self) -> None:
        """a | b matches when either matches."""
        q = Q(state__eq="PUBLISHED") | Q(state__eq="PREVIEW")
        assert q(obj(state="PREVIEW")) is True
        assert q(obj(state="DRAFT")) is False

    def test_and(self) -> None:
        """a & b matches when both match."""
        q = Q(a__eq=1) & Q(b__eq=2)
        assert q(obj(a=1, b=2)) is True
        assert q(obj(a=1, b=3)) is False

    def test_invert(self) -> None:
        """~a matches when a does not."""
        q = ~Q(title__startswith="The")
        assert q(obj(title="An Art")) is True
        assert q(obj(title="The Art")) is False

    def test_double_negation(self) -> None:
        """~~a is a."""
        assert ~~Q(a__eq=1) == Q(a__eq=1)

    def test_precedence_follows_python(self) -> None:
        """a | b & ~c is a | (b & ~c), as Thorn's documented example."""
        q = Q(state__eq="PUBLISHED") | Q(state__eq="PREVIEW") & ~Q(title__startswith="The")
        assert q(obj(state="PUBLISHED", title="The Art")) is True
        assert q(obj(state="PREVIEW", title="An Art")) is True
        assert q(obj(state="PREVIEW", title="The Art")) is False

    def test_negated_group(self) -> None:
        """~(a | b) matches when neither matches."""
        q = ~(Q(state__eq="A") | Q(state__eq="B"))
        assert q(obj(state="C")) is True
        assert q(obj(state="A")) is False

    def test_same_connector_flattens(self) -> None:
        """(a | b) | c is one OR node with three conditions."""
        q = Q(a__eq=1) | Q(b__eq=2) | Q(c__eq=3)
        assert q.connector == "OR"
        assert [c.lookup for c in q.conditions()] == ["a__eq", "b__eq", "c__eq"]
        assert len(q.children) == 3

    def test_empty_q_matches_everything(self) -> None:
        """Q() matches any instance and disappears when combined."""
        assert Q()(obj()) is True
        assert (Q() & Q(a__eq=1)) == Q(a__eq=1)
        assert (Q(a__eq=1) | Q()) == Q(a__eq=1)

    def test_transitions_in_a_tree(self) -> None:
        """uses_transitions sees a now_ filter anywhere in the tree."""
        assert not (Q(a__eq=1) | Q(b__eq=2)).uses_transitions
        assert (Q(a__eq=1) | ~Q(b__now_eq=2)).uses_transitions

    def test_transition_inside_or(self) -> None:
        """A transition inside an OR compares with the previous version too."""
        q = Q(state__now_eq="PUBLISHED") | Q(pinned__eq=True)
        assert (
            q(obj(state="PUBLISHED", pinned=False), obj(state="PUBLISHED", pinned=False)) is False
        )
        assert q(obj(state="PUBLISHED", pinned=False), obj(state="DRAFT", pinned=False)) is True
        assert q(obj(state="DRAFT", pinned=True), obj(state="DRAFT", pinned=True)) is True

    def test_repr(self) -> None:
        """The repr shows the tree."""
        q = Q(state__eq="A") | ~Q(title__startswith="The")
        assert repr(q) == "<Q: (OR: state__eq='A', (NOT (AND: title__startswith='The')))>"

    def test_django_style_q_is_converted(self) -> None:
        """An object shaped like Django's Q (children, connector, negated) is accepted."""
        django_like = SimpleNamespace(
            children=[
                ("state__eq", "A"),
                SimpleNamespace(children=[("b__eq", 1)], connector="AND", negated=True),
            ],
            connector="OR",
            negated=False,
        )
        q = Q(django_like)
        assert q(obj(state="A", b=1)) is True
        assert q(obj(state="B", b=2)) is True
        assert q(obj(state="B", b=1)) is False
        assert (Q(x__eq=1) & django_like)(obj(x=1, state="A", b=1)) is True


class TestDefinitionErrors:
    """Malformed filters fail where they are declared."""

    def test_misspelt_operator(self) -> None:
        """state__eqq is refused, suggesting state__eq."""
        with pytest.raises(
            InvalidFilter, match=r"'eqq' is not an operator; did you mean 'state__eq'"
        ):
            ModelEvent("article.changed", state__eqq="PUBLISHED")

    def test_misspelt_transition(self) -> None:
        """state__now_eqq is refused, suggesting state__now_eq."""
        with pytest.raises(InvalidFilter, match=r"did you mean 'state__now_eq'"):
            Q(state__now_eqq="PUBLISHED")

    def test_missing_operator(self) -> None:
        """state='X' (Django-style equality) is refused, suggesting state__eq."""
        with pytest.raises(InvalidFilter, match=r"has no operator: did you mean 'state__eq'"):
            ModelEvent("article.changed", state="PUBLISHED")

    def test_path_without_operator(self) -> None:
        """author__name='x' is refused: 'name' is not an operator."""
        with pytest.raises(InvalidFilter, match=r"'name' is not an operator"):
            Q(author__name="ada")

    def test_misspelt_option_is_not_a_filter(self) -> None:
        """A misspelt keyword option (sendr_field=) is caught, not ignored."""
        with pytest.raises(InvalidFilter, match="sendr_field"):
            ModelEvent("article.changed", sendr_field="author")

    def test_empty_segment(self) -> None:
        """a____eq has an empty attribute name."""
        with pytest.raises(InvalidFilter, match="not an attribute name"):
            Q(a____eq=1)

    @pytest.mark.parametrize(
        ("lookup", "operand"),
        [
            ("state__in", "ABC"),
            ("state__not_in", 3),
            ("count__gt", None),
            ("count__now_lte", None),
            ("title__startswith", 3),
            ("title__endswith", ["a"]),
        ],
    )
    def test_bad_operand(self, lookup: str, operand: Any) -> None:
        """An operand the operator cannot use is refused at definition time."""
        with pytest.raises(InvalidFilter, match=lookup):
            parse_lookup(lookup, operand)

    def test_positional_filter_must_be_a_q(self) -> None:
        """A positional filter that is not a Q tree is refused."""
        with pytest.raises(InvalidFilter, match="must be a Q object"):
            ModelEvent("article.changed", "state == 'PUBLISHED'")

    def test_invalid_filter_is_a_value_error(self) -> None:
        """InvalidFilter is a ValueError, as Thorn raised."""
        assert issubclass(InvalidFilter, ValueError)
