"""Text fields that apply keys in the order they were pressed.

Textual's ``Input`` and ``TextArea`` insert a typed character on the spot, but an editing
key bound on the field (backspace, ctrl+u, the arrows) reaches its action only after the
key has bubbled up to the app. When keys arrive in a burst (a slow SSH link, a UI thread
busy beside a training run, a script driving the terminal), the next character can land
before the edit: ctrl+u then ``2`` in a field holding ``1.0`` left it empty. Textual
issue #6605 (fix proposed in PR #6631); until it is released, these run the field's own
bindings where the key arrives.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input as _Input
from textual.widgets import TextArea as _TextArea


class _KeysInOrder:
    async def _on_key(self, event: events.Key) -> None:
        """Run this field's own (non-priority) binding for the key here and stop it there.

        Textual calls each class's ``_on_key`` along the MRO until one prevents the default,
        so a key left alone here goes on to the field's own handler (typed text) as before.
        Priority bindings (the app's F-keys) have already run before the field sees a key;
        keys this field does not bind still bubble up as before."""
        if event.is_printable:
            return
        for binding in self._bindings.key_to_bindings.get(event.key, ()):  # type: ignore[attr-defined]
            if not binding.priority and await self.app.run_action(binding.action, self):  # type: ignore[attr-defined]
                event.stop()
                event.prevent_default()
                return


class Input(_KeysInOrder, _Input):
    pass


class TextArea(_KeysInOrder, _TextArea):
    pass
