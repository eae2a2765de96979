"""The wizard's engine façade is a Protocol: the real client and the test fake both fit it."""

from __future__ import annotations

import inspect

from conftest import FakeEngine

from ragtune.tui.engine_client import EngineClient, WizardEngine


def protocol_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(WizardEngine).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def without_annotations(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_the_protocol_covers_every_engine_call_the_wizard_makes() -> None:
    import re
    from pathlib import Path

    from ragtune import tui

    called = set()
    for path in Path(tui.__file__).parent.rglob("*.py"):
        called |= set(re.findall(r"\bengine\.([a-z_]+)\(", path.read_text(encoding="utf-8")))
    assert called and called <= set(protocol_methods()), called - set(protocol_methods())


def test_the_real_client_has_every_method_with_the_same_signature() -> None:
    for name, sig in protocol_methods().items():
        assert inspect.signature(getattr(EngineClient, name)) == sig, name


def test_the_fake_implements_the_protocol_without_subclassing_the_client() -> None:
    assert EngineClient not in FakeEngine.__mro__
    for name, sig in protocol_methods().items():
        method = getattr(FakeEngine, name, None)
        assert method is not None, f"FakeEngine lacks {name}"
        assert without_annotations(inspect.signature(method)) == without_annotations(sig), name


def test_a_signature_that_drifts_is_caught() -> None:
    class Drifted:
        def ask(self, ws, question, top_k=10, dim=None): ...

    sig = protocol_methods()["ask"]
    assert without_annotations(inspect.signature(Drifted.ask)) != without_annotations(sig)
