"""Step 9: save the models with their model cards, and optionally push them to the Hub."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Markdown, Static
from textual.worker import Worker, WorkerState

from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.widgets.config_form import ConfigForm

if TYPE_CHECKING:
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.evaluate.results import RerankResult, Results
    from ragtune.tui.engine_client import ExportResult

FIELDS = ["embedder_repo", "reranker_repo", "private", "token_env"]


def model_lines(
    ws: Workspace, reranker_enabled: bool, rerank: RerankResult | None, results_read: bool
) -> Text:
    """Where each model is and, for the reranker, what the run decided and why.

    The rerank stage may decide not to train one at all (a fresh head and too few queries);
    it records that and its reason in metrics.json, and "not trained yet" would have the user
    wait for a model that is not coming.
    """
    text = Text()
    if ws.embedder_dir.exists():
        text.append(f"embedder  {ws.embedder_dir}  ")
        text.append("(saved)", style="green")
    else:
        text.append("embedder  not trained yet: run the Train step (7)", style="yellow")
    text.append("\nreranker  ")
    if not reranker_enabled:
        text.append("off (reranker.enabled = false): search uses the retriever alone", style="dim")
    elif rerank is not None and not rerank.trained:
        text.append("not trained, by decision: ", style="yellow")
        text.append(f"{rerank.reason or 'no reason recorded'}. Search uses the retriever alone.")
    elif ws.reranker_dir.exists():
        text.append(f"{ws.reranker_dir}  ")
        text.append("(saved)", style="green")
        if rerank is not None and rerank.decision:
            text.append(f"\n          search: {rerank.decision}", style="dim")
    elif results_read:
        text.append("not trained yet: the rerank stage runs after evaluation", style="yellow")
    else:
        text.append("…", style="dim")
    text.append(f"\nconfig    {ws.config_path}")
    return text


class ExportScreen(WizardScreen):
    STEP = "export"
    HEADING = "Export: the models, their model cards, and the Hub"
    HELP = (
        "The models are already saved in sentence-transformers format in the workspace. F5 "
        "writes the model cards and an export summary; F6 pushes to the Hub with the token from "
        "the named environment variable (never stored). ctrl+s writes config.toml for `ragtune run`."
    )
    DEFAULT_CSS = """
    ExportScreen #export-top { height: auto; }
    ExportScreen #paths { height: auto; margin-bottom: 1; }
    ExportScreen #card { height: 1fr; border: round $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "export", "Export", id="export.save", tooltip="Write models and model cards"),
        Binding("f6", "push", "Push to Hub", id="export.push", tooltip="Upload to the Hub"),
    ]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="export-top"):
            yield Static("", id="paths")
            yield ConfigForm(self.wizard.cfg.export, FIELDS, prefix="export", id="export-form")
        with VerticalScroll(id="card"):
            yield Markdown("", id="card-md")
        yield Static("", id="export-status", classes="hint")

    def on_mount(self) -> None:
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        ws = self.wizard.ensure_workspace()
        self.show_models(None, results_read=False)
        self.results_worker()
        if ws.embedder_dir.exists():
            self.card_worker()
        else:
            self.query_one("#card-md", Markdown).update(
                "*The model card appears here once the embedder is trained.*"
            )

    def show_models(self, rerank: RerankResult | None, *, results_read: bool) -> None:
        ws = self.wizard.ensure_workspace()
        enabled = self.wizard.cfg.reranker.enabled
        self.query_one("#paths", Static).update(model_lines(ws, enabled, rerank, results_read))

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="export-results",
        description="Reading the reranker's decision",
    )
    def results_worker(self) -> Results:
        return self.wizard.engine.results(self.wizard.ensure_workspace())

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="export-card",
        description="Model card",
    )
    def card_worker(self) -> str:
        return self.wizard.engine.model_card(self.wizard.cfg, self.wizard.ensure_workspace())

    def on_config_form_valid(self, message: ConfigForm.Valid) -> None:
        self.wizard.cfg.export = message.section  # type: ignore[assignment]

    def action_export(self) -> None:
        if self.query_one(ConfigForm).validate_now() is None:
            return
        self.wizard.save_config()
        self.query_one("#export-status", Static).update("exporting…")
        self.export_worker(False)

    def action_push(self) -> None:
        if self.query_one(ConfigForm).validate_now() is None:
            return
        exp = self.wizard.cfg.export
        if not exp.embedder_repo:
            self.notify("set embedder repo, e.g. me/handbook-embed", severity="warning")
            return
        if not os.environ.get(exp.token_env):
            self.notify(
                f"${exp.token_env} is not set; export it in the shell that runs ragtune",
                title="no Hub token",
                severity="error",
            )
            return
        visibility = "private" if exp.private else "PUBLIC"

        def go(yes: bool | None) -> None:
            if yes:
                self.wizard.save_config()
                self.query_one("#export-status", Static).update("pushing…")
                self.export_worker(True)

        self.app.push_screen(
            ConfirmDialog(
                f"Upload to {visibility} repo(s) {exp.embedder_repo}"
                f"{' and ' + exp.reranker_repo if exp.reranker_repo else ''}?",
                yes="Push",
            ),
            go,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="export", description="Export")
    def export_worker(self, push: bool) -> ExportResult:
        app = self.wizard
        return app.engine.export(app.cfg, app.ensure_workspace(), push)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Values of finished workers only: one superseded by a newer start of its group
        (screen resumed, export started again) is cancelled and never shown."""
        if event.state != WorkerState.SUCCESS:
            return
        group, value = event.worker.group, event.worker.result
        if group == "export-results":
            self.show_models(value.reranker, results_read=True)
        elif group == "export-card":
            self.query_one("#card-md", Markdown).update(str(value))
        elif group == "export":
            self.query_one("#export-status", Static).update("exported:\n" + value.describe())
            self.notify("export finished")

    def worker_failed(self, worker) -> None:
        self.query_one("#export-status", Static).update("")
