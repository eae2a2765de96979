"""A checkbox whose ticked and unticked states differ in shape, not only in colour."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class TickBox(Checkbox):
    """``[✔]`` when ticked, ``[ ]`` when not: readable under NO_COLOR and 16-colour themes.

    Textual's own checkbox draws ``▐X▌`` in both states and tells them apart by the
    colour of the X alone, which NO_COLOR and the ansi palette flatten to the same grey.
    """

    ON = "[✔]"
    OFF = "[ ]"

    DEFAULT_CSS = """
    TickBox {
        & > .toggle--button { color: $text-muted; background: transparent; text-style: none; }
        &.-on > .toggle--button { color: $text-success; background: transparent; text-style: bold; }
        &:ansi {
            & > .toggle--button { color: $foreground; background: transparent; text-style: none; }
            &.-on > .toggle--button { color: $success; background: transparent; text-style: bold; }
        }
    }
    """

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.styled(self.ON if self.value else self.OFF, style)

    def render(self) -> Content:
        """The box alone when there is no label: Textual pads even an empty label by a
        space each side, two cells more than its width allows, so ``[✔]`` showed as ``[✔…``
        in a field sized to fit."""
        if not self._label:
            return self._button
        return super().render()
