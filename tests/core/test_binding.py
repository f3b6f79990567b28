"""The generic blinker binding and its transaction helper, without HTTP."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from thorn_core import InvalidModelEvent, Thorn
from thorn_core.binding import (
    BlinkerBinding,
    ModelBinding,
    ModelChange,
    Trigger,
    atomic,
    changed,
    created,
    current_transaction,
    deleted,
    m2m_changed,
)
from thorn_core.filters import MISSING


class Model:
    """A plain class standing in for a model."""


class Recorder:
    """A change handler that records what it receives."""

    def __init__(self) -> None:
        self.changes: list[ModelChange] = []

    def __call__(self, change: ModelChange) -> None:
        self.changes.append(change)


def roll_back(binding: BlinkerBinding, callback: Any) -> None:
    """Queue ``callback`` in a block that fails with RuntimeError."""
    with atomic():
        binding.on_commit(callback)
        raise RuntimeError("rolled back")


@pytest.fixture
def binding() -> BlinkerBinding:
    """A fresh generic binding."""
    return BlinkerBinding()


class TestTrigger:
    """Triggers name a hook, and a field for many-to-many hooks."""

    def test_m2m_needs_field(self) -> None:
        """A many-to-many hook without a field is refused."""
        with pytest.raises(InvalidModelEvent, match="many-to-many"):
            Trigger("m2m_add")

    def test_plain_hook_takes_no_field(self) -> None:
        """A create hook with a field is refused."""
        with pytest.raises(InvalidModelEvent, match="takes no field"):
            Trigger("create", "tags")

    def test_unknown_hook(self) -> None:
        """An unknown hook is refused."""
        with pytest.raises(InvalidModelEvent, match="unknown hook"):
            Trigger("save")  # type: ignore[arg-type]


class TestBlinkerBinding:
    """Signals reach the handlers connected for exactly that model."""

    def test_is_the_app_default(self) -> None:
        """An app without a binding gets a BlinkerBinding; one given is kept."""
        assert isinstance(Thorn(set_as_current=False).binding, BlinkerBinding)
        mine = BlinkerBinding()
        assert Thorn(set_as_current=False, binding=mine).binding is mine
        assert isinstance(mine, ModelBinding)

    @pytest.mark.parametrize(
        ("hook", "signal"), [("create", created), ("change", changed), ("delete", deleted)]
    )
    def test_hooks(self, binding: BlinkerBinding, hook: Any, signal: Any) -> None:
        """created/changed/deleted call the handler of their hook with the instance."""
        handler = Recorder()
        binding.connect(Model, Trigger(hook), handler)
        instance = Model()
        signal.send(Model, instance=instance)
        assert handler.changes == [ModelChange(instance)]
        binding.disconnect(Model, Trigger(hook), handler)

    def test_other_model_is_ignored(self, binding: BlinkerBinding) -> None:
        """A signal for another model (even a subclass) does not reach the handler."""

        class Other(Model):
            pass

        handler = Recorder()
        binding.connect(Model, Trigger("create"), handler)
        created.send(Other, instance=Other())
        assert handler.changes == []
        binding.disconnect(Model, Trigger("create"), handler)

    def test_connect_twice_connects_once(self, binding: BlinkerBinding) -> None:
        """Connecting the same handler twice calls it once."""
        handler = Recorder()
        binding.connect(Model, Trigger("create"), handler)
        binding.connect(Model, Trigger("create"), handler)
        created.send(Model, instance=Model())
        assert len(handler.changes) == 1
        binding.disconnect(Model, Trigger("create"), handler)

    def test_handlers_run_in_connection_order(self, binding: BlinkerBinding) -> None:
        """Handlers of one model run in the order they were connected."""
        calls: list[int] = []
        handlers = [lambda _change, n=n: calls.append(n) for n in range(8)]
        for handler in handlers:
            binding.connect(Model, Trigger("create"), handler)
        created.send(Model, instance=Model())
        assert calls == list(range(8))
        for handler in handlers:
            binding.disconnect(Model, Trigger("create"), handler)

    def test_disconnect_one_keeps_the_others(self, binding: BlinkerBinding) -> None:
        """Disconnecting one handler leaves the other handlers of the signal connected."""
        first, second = Recorder(), Recorder()
        binding.connect(Model, Trigger("create"), first)
        binding.connect(Model, Trigger("create"), second)
        binding.disconnect(Model, Trigger("create"), first)
        created.send(Model, instance=Model())
        assert (len(first.changes), len(second.changes)) == (0, 1)
        binding.disconnect(Model, Trigger("create"), second)
        assert list(created.receivers_for(Model)) == []

    def test_disconnect(self, binding: BlinkerBinding) -> None:
        """A disconnected handler is not called; disconnecting twice is harmless."""
        handler = Recorder()
        binding.connect(Model, Trigger("create"), handler)
        binding.disconnect(Model, Trigger("create"), handler)
        binding.disconnect(Model, Trigger("create"), handler)
        created.send(Model, instance=Model())
        assert handler.changes == []

    def test_previous_only_when_needed(self, binding: BlinkerBinding) -> None:
        """previous reaches the handler only when connected with needs_previous=True."""
        plain, transitions = Recorder(), Recorder()
        binding.connect(Model, Trigger("change"), plain)
        binding.connect(Model, Trigger("change"), transitions, needs_previous=True)
        changed.send(Model, instance=Model(), previous={"state": "DRAFT"})
        assert plain.changes[0].previous is MISSING
        assert transitions.changes[0].previous == {"state": "DRAFT"}
        binding.disconnect(Model, Trigger("change"), plain)
        binding.disconnect(Model, Trigger("change"), transitions)

    def test_load_previous_is_lazy(self, binding: BlinkerBinding) -> None:
        """load_previous is called only when a handler needs previous values."""
        calls: list[int] = []

        def load() -> dict[str, str]:
            calls.append(1)
            return {"state": "DRAFT"}

        plain, transitions = Recorder(), Recorder()
        binding.connect(Model, Trigger("change"), plain)
        changed.send(Model, instance=Model(), load_previous=load)
        assert calls == []
        binding.connect(Model, Trigger("change"), transitions, needs_previous=True)
        changed.send(Model, instance=Model(), load_previous=load)
        assert calls == [1]
        assert transitions.changes[0].previous == {"state": "DRAFT"}
        binding.disconnect(Model, Trigger("change"), plain)
        binding.disconnect(Model, Trigger("change"), transitions)

    def test_m2m_action_and_field(self, binding: BlinkerBinding) -> None:
        """An m2m handler runs for its action and field only, with them in the context."""
        handler = Recorder()
        trigger = Trigger("m2m_add", "tags")
        binding.connect(Model, trigger, handler)
        instance = Model()
        m2m_changed.send(Model, instance=instance, field="tags", action="remove", related=[1])
        m2m_changed.send(Model, instance=instance, field="authors", action="add", related=[1])
        m2m_changed.send(Model, instance=instance, field="tags", action="add", related=(1, 2))
        assert handler.changes == [
            ModelChange(instance, context={"field": "tags", "action": "add", "related": [1, 2]})
        ]
        binding.disconnect(Model, trigger, handler)

    def test_signal_without_instance(self, binding: BlinkerBinding) -> None:
        """Sending a hook signal without instance= is a TypeError that says how."""
        handler = Recorder()
        binding.connect(Model, Trigger("create"), handler)
        with pytest.raises(TypeError, match="instance="):
            created.send(Model, obj=Model())
        binding.disconnect(Model, Trigger("create"), handler)


class TestAtomic:
    """atomic() queues after-commit callbacks, and runs or drops them."""

    def test_without_transaction_runs_at_once(self, binding: BlinkerBinding) -> None:
        """on_commit outside atomic() runs the callback immediately."""
        ran: list[str] = []
        binding.on_commit(lambda: ran.append("x"))
        assert ran == ["x"]

    def test_commit(self, binding: BlinkerBinding) -> None:
        """Callbacks run in order when the block exits normally."""
        ran: list[int] = []
        with atomic():
            binding.on_commit(lambda: ran.append(1))
            binding.on_commit(lambda: ran.append(2))
            assert ran == []
        assert ran == [1, 2]
        assert current_transaction() is None

    def test_exception_rolls_back(self, binding: BlinkerBinding) -> None:
        """An exception drops the callbacks and propagates."""
        ran: list[int] = []
        with pytest.raises(RuntimeError):
            roll_back(binding, lambda: ran.append(1))
        assert ran == []
        assert current_transaction() is None

    def test_explicit_rollback(self, binding: BlinkerBinding) -> None:
        """Transaction.rollback() drops the callbacks without an exception."""
        ran: list[int] = []
        with atomic() as transaction:
            binding.on_commit(lambda: ran.append(1))
            transaction.rollback()
        assert ran == []

    def test_nested_commit_waits_for_outermost(self, binding: BlinkerBinding) -> None:
        """A nested block's callbacks run when the outermost block commits."""
        ran: list[int] = []
        with atomic():
            with atomic():
                binding.on_commit(lambda: ran.append(1))
            assert ran == []
        assert ran == [1]

    def test_nested_rollback_is_a_savepoint(self, binding: BlinkerBinding) -> None:
        """A nested block that rolls back drops only its own callbacks."""
        ran: list[int] = []
        with atomic():
            binding.on_commit(lambda: ran.append(1))
            with pytest.raises(RuntimeError):
                roll_back(binding, lambda: ran.append(2))
            binding.on_commit(lambda: ran.append(3))
        assert ran == [1, 3]

    def test_transactions_are_per_thread(self, binding: BlinkerBinding) -> None:
        """A block open in another thread does not hold this thread's callbacks."""
        import threading

        ran: list[str] = []
        with atomic():
            worker = threading.Thread(target=lambda: binding.on_commit(lambda: ran.append("t")))
            worker.start()
            worker.join()
            assert ran == ["t"]

    def test_instance_is_plain_namespace(self) -> None:
        """Any object can be an instance: ModelChange just carries it."""
        instance = SimpleNamespace(id=1)
        assert ModelChange(instance).instance is instance
