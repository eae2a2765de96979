"""Command palette entries: jump to a step, switch theme, save the config, help, every key."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from ragtune.tui.widgets.step_bar import STEPS

if TYPE_CHECKING:
    from ragtune.tui.app import RagtuneApp


class WizardCommands(Provider):
    def _commands(self) -> list[tuple[str, object, str]]:
        app: RagtuneApp = self.app  # type: ignore[assignment]
        out: list[tuple[str, object, str]] = []
        for i, (name, label) in enumerate(STEPS, 1):
            out.append((f"Go to step {i}: {label}", partial(app.goto, name), f"open {label}"))
        for theme in sorted(app.theme_names):
            out.append((f"Theme: {theme}", partial(app.choose_theme, theme), "remembered"))
        out.append(("Save config.toml", app.action_save_config, "write the run's config"))
        out.append(("Help", app.action_help, "keys and tips"))
        out.extend(self._key_commands())
        return out

    def _key_commands(self) -> list[tuple[str, object, str]]:
        """Every binding of the step the palette was opened on, footer-shown or not.

        The footer shows only what fits at 80 columns; this keeps the rest one search away.
        """
        app: RagtuneApp = self.app  # type: ignore[assignment]
        screen = self.screen
        out: list[tuple[str, object, str]] = []
        seen: set[str] = set()
        for namespace, bindings in ((screen, screen.BINDINGS), (app, app.BINDINGS)):
            for binding in bindings:
                if not isinstance(binding, Binding) or not binding.description:
                    continue
                if binding.key in seen or binding.key == "escape":
                    continue
                seen.add(binding.key)
                key = app.get_key_display(binding)
                out.append(
                    (
                        f"Key {key}: {binding.description}",
                        partial(app.run_action, binding.action, namespace),
                        binding.tooltip or binding.description,
                    )
                )
        return out

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)  # type: ignore[arg-type]
