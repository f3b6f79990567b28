"""The model -> handler table every ORM binding keeps (core, SQLAlchemy, Django)."""

from __future__ import annotations

import gc

from thorn_core.binding import HandlerTable, ModelChange, Trigger


class Article:
    """A model class for the table."""


def on_create(change: ModelChange) -> None:
    """A handler."""


def on_change(change: ModelChange) -> None:
    """Another handler."""


class TestHandlerTable:
    """A binding connects, looks up and disconnects handlers through one HandlerTable."""

    def test_connecting_twice_connects_once(self) -> None:
        """The second add of one (model, trigger, handler) is refused and changes nothing."""
        table = HandlerTable()
        assert table.add(Article, Trigger("create"), on_create, False)
        assert not table.add(Article, Trigger("create"), on_create, True)
        assert table.matching(Article) == [(Trigger("create"), on_create, False)]

    def test_matching_by_hook_in_connection_order(self) -> None:
        """Handlers come back in the order they were connected, filtered by hook."""
        table = HandlerTable()
        table.add(Article, Trigger("change"), on_change, True)
        table.add(Article, Trigger("create"), on_create, False)
        table.add(Article, Trigger("m2m_add", "tags"), on_create, False)
        assert [t.hook for t, _h, _n in table.matching(Article)] == ["change", "create", "m2m_add"]
        assert table.matching(Article, ("create",)) == [(Trigger("create"), on_create, False)]
        assert table.needs_previous(Article, ("change",))
        assert not table.needs_previous(Article, ("create", "m2m_add"))

    def test_remove_forgets_the_model_with_its_last_handler(self) -> None:
        """Removing the last handler of a model leaves it unconnected."""
        table = HandlerTable()
        table.add(Article, Trigger("create"), on_create, False)
        table.add(Article, Trigger("change"), on_change, False)
        table.remove(Article, Trigger("create"), on_create)
        assert table.connected(Article)
        assert not table.has(Article, Trigger("create"), on_create)
        table.remove(Article, Trigger("change"), on_change)
        table.remove(Article, Trigger("change"), on_change)  # twice: nothing happens
        assert not table.connected(Article)
        assert len(table) == 0

    def test_models_are_weakly_held(self) -> None:
        """A model class that goes away leaves the table."""
        table = HandlerTable()
        temporary = type("Temporary", (), {})
        table.add(temporary, Trigger("create"), on_create, False)
        assert len(table) == 1
        del temporary
        gc.collect()
        assert len(table) == 0
