"""Step 4: which generator writes training queries: an LLM through litellm, or the LLM-free one."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.widgets.config_form import ConfigForm
from ragtune.tui.widgets.text_entry import Input

if TYPE_CHECKING:
    from ragtune.engine.config import LlmConfig
    from ragtune.engine.generate.llm_connection import ConnectionResult
    from ragtune.engine.generate.llm_cost import CostEstimate

LLM_FIELDS = [
    "model",
    "api_base",
    "api_key_env",
    "concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "queries_per_chunk",
    "temperature",
    "max_tokens",
]


def duration(estimate: CostEstimate, llm: LlmConfig, latency_s: float | None) -> str:
    """How long the full generation takes: the rate limits set a floor, and one call's
    measured round trip (F5 Test) over the calls sent at once gives the rest."""
    from ragtune.tui.run_model import format_eta

    floors = []
    if llm.requests_per_minute:
        floors.append(estimate.calls / llm.requests_per_minute * 60)
    if llm.tokens_per_minute:
        tokens = estimate.input_tokens + estimate.output_tokens
        floors.append(tokens / llm.tokens_per_minute * 60)
    floor = max(floors, default=0.0)
    if latency_s:
        seconds = max(floor, estimate.calls * latency_s / max(1, llm.concurrency))
        return (
            f"at least {format_eta(seconds)}: {estimate.calls:,} calls x {latency_s:.1f}s "
            f"(the test call) / {llm.concurrency} at once"
            + (", held back by the rate limits" if floor >= seconds else "")
            + "; a generation call writes more than the test call, so expect longer"
        )
    if floor:
        return f"at least {format_eta(floor)} (the rate limits); F5 Test times a call"
    return "unknown until F5 Test times one call"


def cost_rows(estimate: CostEstimate) -> list[tuple[str, str]]:
    price = f"about ${estimate.usd:,.2f}" if estimate.usd is not None else "unknown"
    return [
        ("calls", f"{estimate.calls:,}"),
        ("input tokens", f"~{estimate.input_tokens:,}"),
        ("output tokens", f"~{estimate.output_tokens:,}"),
        ("price", price),
    ]


def cost_table(estimate: CostEstimate, time: str = "") -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    for label, value in cost_rows(estimate):
        table.add_row(label, value)
    if time:
        table.add_row("time", time)
    if estimate.note:
        table.add_row("note", estimate.note)
    return table


class LlmScreen(WizardScreen):
    STEP = "llm"
    HEADING = "LLM: who writes the training questions"
    HELP = (
        "generator llm-free needs no key and no network: queries are cut from the chunks. "
        "litellm speaks to any hosted or local model (openai/..., ollama/..., hosted_vllm/...). "
        "The key is read from the named environment variable, or typed here and kept in "
        "memory only: it is never written to config.toml, logs or events."
    )
    DEFAULT_CSS = """
    LlmScreen #llm-scroll { height: 1fr; }
    LlmScreen #key-row { height: auto; }
    LlmScreen #key-row Label { width: 22; color: $text-muted; padding-top: 1; }
    LlmScreen #api-key { width: 1fr; max-width: 120; }
    LlmScreen #llm-result, LlmScreen #llm-cost { height: auto; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "test_connection", "Test", id="llm.test", tooltip="Send one tiny request"),
        Binding(
            "f6",
            "estimate",
            "Estimate cost",
            id="llm.estimate",
            tooltip="Calls, tokens, price and time for the full run",
        ),
    ]

    AUTO_FOCUS = "#gen-form-generator"
    estimate: CostEstimate | None = None

    def compose_body(self) -> ComposeResult:
        gen = self.wizard.cfg.generation
        # Not a Tab stop of its own (it drew no focus mark); its fields scroll it into view.
        with VerticalScroll(id="llm-scroll", can_focus=False):
            yield ConfigForm(gen, ["generator"], prefix="generation", id="gen-form")
            yield ConfigForm(gen.llm, LLM_FIELDS, prefix="generation.llm", id="llm-form")
            # Bordered, unlike the compact fields: empty, with its hint inside, a borderless
            # key field read as more label text.
            with Horizontal(id="key-row"):
                yield Label("api key (memory only)")
                yield Input(
                    self.wizard.state.api_key or "",
                    password=True,
                    placeholder="paste a key here (never saved), or set api key env",
                    id="api-key",
                )
            yield Static(self.generator_note(), id="llm-result")
            yield Static("", id="llm-cost")

    def generator_note(self) -> str:
        """What the run will really do with these settings (``auto`` uses the LLM once a model is
        typed)."""
        gen = self.wizard.cfg.generation
        if not gen.calls_llm:
            if not self.wizard.cfg.sources.has_documents and self.wizard.cfg.sources.description:
                return (
                    "LLM-free cannot write passages from a description: choose litellm and a "
                    "model, or pick documents in step 2."
                )
            return "LLM-free generator: no key, no network, no cost. F3 goes on."
        auto = " (generator auto: a model is set)" if gen.generator == "auto" else ""
        return (
            f"LLM generator {gen.llm.model}{auto}: calls are sent to "
            f"{gen.llm.api_base or 'the provider'} and may cost money. "
            "F5 tests the connection; F6 estimates the full run's cost."
        )

    def on_mount(self) -> None:
        self.maybe_warm()

    def maybe_warm(self) -> None:
        """Load litellm in the background once an LLM may be used, not on the first F5.

        Its import takes 4-11 s; done here, the first "Test" costs only the round trip.
        """
        if self.wizard.cfg.generation.calls_llm and not self.wizard.engine.llm_ready():
            self.warm_worker()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="llm-warm",
        description="Loading litellm",
    )
    def warm_worker(self) -> None:
        self.wizard.engine.warm_llm()

    def refresh_note(self) -> None:
        """The note and the cost table follow the settings: a stale estimate is worse than none."""
        if not self.is_mounted:
            return
        self.workers.cancel_group(self, "llm")
        self.workers.cancel_group(self, "llm-cost")
        self.query_one("#llm-result", Static).update(self.generator_note())
        self.estimate = None
        self.wizard.state.estimate = None
        self.query_one("#llm-cost", Static).update("")

    @on(ConfigForm.Valid, "#gen-form")
    def generator_changed(self, message: ConfigForm.Valid) -> None:
        self.generation_changed(generator=message.section.generator)  # type: ignore[attr-defined]

    @on(ConfigForm.Valid, "#llm-form")
    def llm_changed(self, message: ConfigForm.Valid) -> None:
        self.generation_changed(llm=message.section)

    def generation_changed(self, **values: Any) -> None:
        gen = self.wizard.cfg.generation
        before = (gen.resolved, gen.llm.model, gen.llm.api_base)
        for key, value in values.items():
            setattr(gen, key, value)
        if (gen.resolved, gen.llm.model, gen.llm.api_base) != before:
            self.refresh_note()
            self.maybe_warm()

    @on(Input.Changed, "#api-key")
    def key_changed(self, event: Input.Changed) -> None:
        self.wizard.state.api_key = event.value or None

    def api_key(self) -> str | None:
        if self.wizard.state.api_key:
            return self.wizard.state.api_key
        env = self.wizard.cfg.generation.llm.api_key_env
        return os.environ.get(env) if env else None

    def forms_ok(self) -> bool:
        """Validate both forms and commit them to the config now.

        Their ``Valid`` messages arrive later: a key pressed right after typing (F5 after
        the api base) would otherwise test the previous, half-typed settings.
        """
        gen = self.wizard.cfg.generation
        sections = {form.id: form.validate_now() for form in self.query(ConfigForm)}
        if any(section is None for section in sections.values()):
            return False
        if sections.get("gen-form") is not None:
            gen.generator = sections["gen-form"].generator  # type: ignore[attr-defined]
        if sections.get("llm-form") is not None:
            gen.llm = sections["llm-form"]  # type: ignore[assignment]
        return True

    def action_test_connection(self) -> None:
        if not self.forms_ok():
            return
        gen = self.wizard.cfg.generation
        if not gen.calls_llm:
            self.query_one("#llm-result", Static).update(
                f"Nothing to test: {self.llm_free_why()}. It makes no calls (no key, no "
                "network). Set a model above to test one."
            )
            return
        if not self.wizard.cfg.generation.llm.model:
            self.query_one("#llm-result", Static).update(
                Content.styled("✘ set a model first, e.g. openai/gpt-4o-mini", "$error")
            )
            return
        loading = "" if self.wizard.engine.llm_ready() else " (loading litellm, first time only)"
        self.query_one("#llm-result", Static).update(f"testing…{loading}")
        self.test_worker(self.api_key())

    @work(
        thread=True, exclusive=True, exit_on_error=False, group="llm", description="Connection test"
    )
    def test_worker(self, api_key: str | None) -> ConnectionResult:
        return self.wizard.engine.test_connection(self.wizard.cfg.generation.llm, api_key)

    def llm_free_why(self) -> str:
        if self.wizard.cfg.generation.generator == "llm-free":
            return "generator llm-free is chosen"
        return "no LLM model is set, so generator auto uses the LLM-free one"

    def action_estimate(self) -> None:
        if not self.forms_ok():
            return
        gen = self.wizard.cfg.generation
        cost = self.query_one("#llm-cost", Static)
        if not gen.calls_llm:
            self.estimate = None
            cost.update(
                f"Nothing to estimate: {self.llm_free_why()}. It makes no calls and costs "
                "nothing. Set a model above to estimate an LLM run."
            )
            return
        if not gen.llm.model:
            self.estimate = None
            cost.update(Content.styled("✘ set a model first, e.g. openai/gpt-4o-mini", "$error"))
            return
        cost.update("estimating (chunking the documents first)…")
        self.estimate_worker()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="llm-cost",
        description="Cost estimate",
    )
    def estimate_worker(self) -> CostEstimate:
        app = self.wizard
        return app.engine.estimate_cost(app.cfg, app.ensure_workspace())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Results of finished workers only: a test or an estimate superseded by a newer one,
        or by a change of model or endpoint (``refresh_note`` cancels them), never shows."""
        if event.state != WorkerState.SUCCESS:
            return
        if event.worker.group == "llm":
            res: ConnectionResult = event.worker.result
            latency = f" in {res.latency_s:.2f}s" if res.latency_s is not None else ""
            text = (
                Content.styled(f"✔ connected{latency}: {res.message}", "$success")
                if res.ok
                else Content.styled(f"✘ {res.message}", "$error")
            )
            self.query_one("#llm-result", Static).update(text)
            self.wizard.state.call_latency_s = res.latency_s if res.ok else None
            if self.estimate is not None:
                self.show_estimate(self.estimate)
        elif event.worker.group == "llm-cost":
            self.show_estimate(event.worker.result)

    def show_estimate(self, estimate: CostEstimate) -> None:
        """The table, and the estimate kept for the confirm before a paid run."""
        self.estimate = estimate
        state = self.wizard.state
        time = duration(estimate, self.wizard.cfg.generation.llm, state.call_latency_s)
        state.estimate = (estimate, time, self.settings_key())
        self.query_one("#llm-cost", Static).update(cost_table(estimate, time))

    def settings_key(self) -> tuple[str, str]:
        llm = self.wizard.cfg.generation.llm
        return (llm.model, llm.api_base)

    def worker_failed(self, worker) -> None:
        self.query_one("#llm-result", Static).update(self.generator_note())
        self.query_one("#llm-cost", Static).update("")

    def commit_state(self) -> None:
        self.forms_ok()

    def leave_problem(self) -> str | None:
        if not self.forms_ok():
            return "fix the settings marked in red"
        gen = self.wizard.cfg.generation
        if gen.calls_llm and not gen.llm.model:
            return "set llm model, or choose generator llm-free"
        return None
