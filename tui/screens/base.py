"""The frame every wizard step shares: step bar, body, footer, and worker error reporting."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from ragtune.tui.errors import friendly
from ragtune.tui.widgets.step_bar import StepBar

if TYPE_CHECKING:
    from ragtune.tui.app import RagtuneApp


class WizardScreen(Screen):
    STEP: ClassVar[str] = ""
    HEADING: ClassVar[str] = ""
    HELP: ClassVar[str] = ""

    DEFAULT_CSS = """
    WizardScreen #body { height: 1fr; padding: 0 1; }
    WizardScreen .heading { text-style: bold; color: $primary; height: 1; }
    WizardScreen .hint { color: $text-muted; }
    WizardScreen .ok { color: $success; }
    WizardScreen .bad { color: $error; }
    """

    @property
    def wizard(self) -> RagtuneApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP)
        with Vertical(id="body"):
            if self.HEADING:
                yield Static(self.HEADING, classes="heading")
            yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def leave_problem(self) -> str | None:
        """A reason the user cannot go on to the next step yet, or None."""
        return None

    def commit_state(self) -> None:
        """Put what is typed on this step into the run's config now.

        Fields report changes by message; the app calls this before it saves config.toml
        (step change, quit), so a value typed just before F3 or Ctrl+Q is not left out.
        """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            shown = self.worker_failed(event.worker)
            if not shown:
                what = event.worker.description or event.worker.name
                self.notify(
                    friendly(event.worker.error),
                    title=f"{what} failed",
                    severity="error",
                    timeout=8,
                )

    def worker_failed(self, worker: Worker) -> bool | None:
        """Screens reset busy indicators here; True when the screen shows the error itself
        where the user is looking, so no toast repeats it."""
        return None
