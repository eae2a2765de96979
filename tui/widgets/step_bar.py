"""The one-line wizard progress bar at the top of every step screen."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

STEPS: tuple[tuple[str, str], ...] = (
    ("start", "Start"),
    ("sources", "Sources"),
    ("chunking", "Chunks"),
    ("llm", "LLM"),
    ("samples", "Samples"),
    ("settings", "Settings"),
    ("training", "Train"),
    ("results", "Results"),
    ("export", "Export"),
)
STEP_NAMES = tuple(name for name, _ in STEPS)


class StepBar(Static):
    DEFAULT_CSS = """
    StepBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def render(self) -> Text:
        """Numbered when there is room; at 80 columns the bare names still fit on one line."""
        wide = self.size.width >= 96
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (name, label) in enumerate(STEPS, 1):
            if i > 1:
                text.append(" › " if wide else "›", style="dim")
            shown = f"{i} {label}" if wide else label
            if name == self.current:
                text.append(shown, style="bold reverse")
            else:
                text.append(shown)
        return text
