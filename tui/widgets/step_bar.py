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
        """Always numbered, since messages name steps by number ("step 7"); at 80 columns
        the number sits against the name, with one space between steps."""
        wide = self.size.width >= 96
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (name, label) in enumerate(STEPS, 1):
            if i > 1:
                text.append(" › " if wide else " ", style="dim")
            current = name == self.current
            number = f"{i} " if wide else str(i)
            text.append(number, style="bold reverse" if current else "bold")
            text.append(label, style="bold reverse" if current else "")
        return text
