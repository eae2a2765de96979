"""The deploy table: quality, index bytes and encode speed of each way to ship the embedder.

Reads the engine's typed ``DeployResults`` (``ragtune.engine.deploy.results``); fits 80 columns. Rows
the deciding queries cannot tell from the best carry ``≈``, the suggested row ``◀``, so both
read under NO_COLOR too.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ragtune.engine.deploy.results import ENCODER_LABELS, DeployResults, DeploySuite
from ragtune.tui.widgets.data_table import DataTable

COLUMNS = ("dim", "stored", "encoder", "nDCG@10", "95% CI", "vs best", "B/psg", "speed")


def _interval(low: float, high: float) -> str:
    return f"{low:.3f}–{high:.3f}"


class DeployTable(Vertical):
    """Attributes down: ``show(results)`` redraws; nothing here reads files or loads models."""

    DEFAULT_CSS = """
    DeployTable { height: auto; }
    DeployTable > #deploy-title { text-style: bold; }
    DeployTable > DataTable { height: auto; max-height: 20; }
    DeployTable > .deploy-note { color: $text-muted; }
    """

    def __init__(self, results: DeployResults | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.results = results or DeployResults([], None, None)

    def compose(self) -> ComposeResult:
        yield Static("", id="deploy-title")
        yield DataTable(id="deploy-rows", zebra_stripes=True, cursor_type="row")
        yield Static("", id="deploy-suggestion", classes="deploy-note")
        yield Static("", id="deploy-interpolation", classes="deploy-note")

    def on_mount(self) -> None:
        self.show(self.results)

    def show(self, results: DeployResults) -> None:
        self.results = results
        table = self.query_one("#deploy-rows", DataTable)
        table.clear(columns=True)
        suite = results.deciding
        title = self.query_one("#deploy-title", Static)
        if suite is None:
            title.update("Deploy table: not measured yet (the deploy stage runs after evaluate)")
            table.display = False
            return
        table.display = True
        title.update(f"Deploy table: {suite.name} queries ({suite.queries})")
        for name in COLUMNS:
            table.add_column(
                Text(name, justify="left" if name in ("stored", "encoder") else "right")
            )
        self._rows(table, suite, results)
        sug = results.suggestion
        self.query_one("#deploy-suggestion", Static).update(
            f"◀ suggested: {ENCODER_LABELS.get(sug.encoder, sug.encoder)}, dim {sug.dim}, "
            f"{sug.precision}; ≈ = within the best's 95% interval. Speed is passages/s "
            "against torch float32 on this machine."
            if sug
            else ""
        )
        interp = results.interpolation
        note = ""
        if interp is not None:
            gain = interp.gain("held-out", "tuned")
            note = f"Interpolation with the base: weight {interp.chosen:g} of the fine-tuned model"
            if gain is not None:
                note += (
                    f", {gain.mean:+.4f} [{gain.low:+.4f}, {gain.high:+.4f}] nDCG@10 vs "
                    f"fine-tuned on {interp.report_queries} held-out queries it was not chosen on"
                )
        self.query_one("#deploy-interpolation", Static).update(note)

    @staticmethod
    def _rows(table: DataTable, suite: DeploySuite, results: DeployResults) -> None:
        sug = results.suggestion
        chosen = (sug.encoder, sug.dim, sug.precision) if sug else None
        for r in suite.rows:
            suggested = (r.encoder, r.dim, r.precision) == chosen
            best = r.vs_best.mean == 0 and r.vs_best.low == 0 and r.vs_best.high == 0
            vs = "best" if best else f"{r.vs_best.mean:+.3f}{' ≈' if r.within_best else '  '}"
            style = "bold" if suggested else ""
            table.add_row(
                Text(str(r.dim), justify="right", style=style),
                Text(r.precision, style=style),
                Text(ENCODER_LABELS.get(r.encoder, r.encoder), style=style),
                Text(f"{r.ndcg.mean:.4f}", justify="right", style=style),
                Text(_interval(r.ndcg.low, r.ndcg.high), justify="right"),
                Text(vs, justify="right", style="dim" if not r.within_best else ""),
                Text(str(r.bytes_per_chunk), justify="right"),
                Text(f"{r.encode_ratio:.2f}x" + (" ◀" if suggested else "  "), justify="right"),
            )
