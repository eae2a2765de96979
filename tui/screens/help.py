"""The F1 help screen: every active key binding, what the current step does, and tmux/SSH tips."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

TIPS = """\
Keys: F-keys and ctrl+letter work over SSH and tmux; alt and a lone escape often do not.
ctrl+p opens the command palette (go to a step, switch theme, save the config).
Training runs in its own process: quit or lose the SSH session and it carries on;
open the workspace again (ragtune -w runs/NAME) to re-attach.
tmux: set -g default-terminal "tmux-256color", set -as terminal-features ",*:RGB",
set -sg escape-time 10. Colours wrong? try --color-system 256 or --theme ansi-dark."""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 96; max-width: 100%; height: 90%; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "close", "Close", id="help.close", tooltip="Close the help"),
        Binding("q", "close", "Close", show=False),
        Binding("escape", "close", "Close", show=False),
    ]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.target = screen

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("key", no_wrap=True)
        table.add_column("action")
        table.add_column("what it does", ratio=1)
        seen = set()
        for binding in [*self.target.BINDINGS, *self.app.BINDINGS]:
            if not isinstance(binding, Binding) or binding.key in seen:
                continue
            seen.add(binding.key)
            if binding.description:
                table.add_row(binding.key, binding.description, binding.tooltip)
        title = getattr(self.target, "HEADING", "") or "ragtune"
        about = getattr(self.target, "HELP", "")
        with VerticalScroll():
            head = Text(f"Help: {title}", style="bold")
            head.append("   F1, q or escape closes this help", style="dim")
            yield Static(head)
            if about:
                yield Static(about)
            yield Static(table)
            yield Static(TIPS)

    def action_close(self) -> None:
        self.dismiss(None)
