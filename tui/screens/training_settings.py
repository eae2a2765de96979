"""Step 6: the models and training settings, with presets, validated by the engine's config rules."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from ragtune.engine.config import RunConfig
from ragtune.tui.engine_client import SettingsCheck

if TYPE_CHECKING:
    from ragtune.engine.core.gpu import BatchProposal
from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.widgets.config_form import ConfigForm

EMBEDDER_FIELDS = [
    "base_model",
    "matryoshka_dims",
    "loss",
    "hard_negatives",
    "pseudo_label_model",
    "batch_size",
    "learning_rate",
    "epochs",
    "warmup_ratio",
    "scheduler",
    "max_seq_length",
    "precision",
    "lora",
    "lora_r",
]
RERANKER_FIELDS = ["enabled", "base_model", "loss", "num_negatives", "batch_size", "epochs"]
EVAL_FIELDS = ["benchmark"]

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick CPU check": {
        "embedder": {
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
            "batch_size": 16,
            "epochs": 1.0,
            "precision": "fp32",
            "lora": False,
        },
        "reranker": {
            "enabled": True,
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
            "batch_size": 16,
            "epochs": 1.0,
            "num_negatives": 2,
        },
    },
    "GPU default": {
        "embedder": {
            "base_model": "nomic-ai/modernbert-embed-base",
            "batch_size": 64,
            "epochs": 3.0,
            "precision": "auto",
            "loss": "cached_mnrl",
            "lora": False,
        },
        "reranker": {"enabled": True, "batch_size": 32, "epochs": 1.0, "num_negatives": 4},
    },
    "GPL pseudo-labels": {
        # Wang et al. 2022: a trained cross-encoder's margins on mined negatives as labels.
        "embedder": {"loss": "gpl", "hard_negatives": 4, "epochs": 1.0},
        "reranker": {"enabled": True},
    },
    "large model, LoRA": {
        # LoRA trains a few adapter weights from zero: it wants ~10x full fine-tuning's rate.
        "embedder": {
            "batch_size": 32,
            "epochs": 2.0,
            "lora": True,
            "lora_r": 16,
            "learning_rate": 2e-4,
        },
        "reranker": {"enabled": True},
    },
}


MODEL_KEYS = frozenset({"base_model"})
"""Set only by a preset that names a model: the others keep the model the user picked."""


def governed(part: str) -> list[str]:
    """The settings of ``part`` that presets are about: every key any preset sets."""
    keys = {key for preset in PRESETS.values() for key in preset.get(part, {})}
    return sorted(keys - MODEL_KEYS)


def preset_values(name: str) -> dict[str, dict[str, Any]]:
    """The preset as a complete statement: each governed setting it does not name at its
    default, so the result never depends on which presets were applied before."""
    from ragtune.engine.config import RunConfig

    defaults = RunConfig()
    out: dict[str, dict[str, Any]] = {}
    for part in ("embedder", "reranker"):
        base = getattr(defaults, part).to_dict()
        out[part] = {key: base[key] for key in governed(part)} | PRESETS[name].get(part, {})
    return out


ENGINE_IMPORTS = threading.Lock()
"""Held by this step's workers around their engine calls: two threads importing transformers
at once can find it half initialised (ImportError: cannot import name 'AutoConfig')."""


def proposal_line(proposal: BatchProposal) -> str:
    """The engine's proposed training batch for this machine, and why, in one line."""
    if not proposal.memory_gib:
        return f"CPU: {proposal.reason}"
    return f"proposed for this GPU: batch_size = {proposal.batch_size}; {proposal.reason}"


def benchmark_folder(text: str, base: Path) -> Path:
    """A typed benchmark path as the run will read it: ``~`` expanded, relative to ``base``."""
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def benchmark_problem(text: str, base: Path) -> str | None:
    """Why the labelled folder cannot be evaluated on, said now instead of after training
    (the engine's own check, which ``ragtune run`` makes before its first stage)."""
    from ragtune.engine.core.errors import InputError
    from ragtune.engine.evaluate.labels import check_benchmark

    if not text.strip():
        return None
    try:
        check_benchmark(benchmark_folder(text, base))
    except InputError as exc:
        return f"{exc.message}: {exc.hint}"
    return None


class TrainingSettingsScreen(WizardScreen):
    STEP = "settings"
    HEADING = "Training settings: base models, Matryoshka sizes, loss, batch, schedule"
    HELP = (
        "Pick a preset, then adjust. Matryoshka dims are the embedding sizes trained and "
        "evaluated (empty = derived from the model). Bigger batches give more in-batch "
        "negatives; cached_mnrl makes big batches fit in memory. A preset sets every "
        "setting any preset is about (the others' to their defaults), so the order presets "
        "are applied in does not matter; the base models change only when a preset names "
        "one. The focused field's help shows under it. Sizes, the best-model metric and the "
        "GPL teacher are checked against the model as the run will check them."
    )
    DEFAULT_CSS = """
    TrainingSettingsScreen #preset-row { height: 1; }
    TrainingSettingsScreen #preset-row Label { width: 22; color: $text-muted; }
    TrainingSettingsScreen #preset { width: 1fr; max-width: 40; }
    TrainingSettingsScreen #preset-note {
        height: auto; padding-left: 22; color: $text-muted; display: none;
    }
    TrainingSettingsScreen #preset-note.-shown { display: block; }
    TrainingSettingsScreen #preset-note.-warn { color: $warning; }
    TrainingSettingsScreen #settings-scroll { height: 1fr; }
    TrainingSettingsScreen .section { text-style: bold; margin-top: 1; }
    TrainingSettingsScreen .check-note { height: auto; padding-left: 22; color: $warning; }
    TrainingSettingsScreen #batch-proposal { height: auto; padding-left: 22; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f5",
            "apply_preset",
            "Apply preset",
            id="settings.preset",
            tooltip="Fill the form from the chosen preset",
        ),
    ]

    def compose_body(self) -> ComposeResult:
        cfg = self.wizard.cfg
        with Horizontal(id="preset-row"):
            yield Label("preset")
            yield Select([(p, p) for p in PRESETS], prompt="choose…", compact=True, id="preset")
        yield Static("", id="preset-note")
        # Not a Tab stop of its own (it drew no focus mark); its fields scroll it into view.
        with VerticalScroll(id="settings-scroll", can_focus=False):
            yield Static("Embedder (bi-encoder)", classes="section")
            yield ConfigForm(
                cfg.embedder,
                EMBEDDER_FIELDS,
                prefix="embedder",
                placeholders={"matryoshka_dims": "empty = derived from the model's size"},
                id="emb-form",
            )
            yield Static("", id="emb-note", classes="check-note")
            yield Static("Reranker (cross-encoder)", classes="section")
            yield ConfigForm(cfg.reranker, RERANKER_FIELDS, prefix="reranker", id="rr-form")
            yield Static("", id="rr-note", classes="check-note")
            yield Static("Evaluation", classes="section")
            base = self.wizard.browse_root
            yield ConfigForm(
                cfg.eval,
                EVAL_FIELDS,
                prefix="eval",
                labels={"benchmark": "benchmark folder"},
                placeholders={"benchmark": "optional: a labelled folder, e.g. ~/data/my_eval"},
                checks={"benchmark": lambda text: benchmark_problem(str(text), base)},
                id="eval-form",
            )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "preset" and isinstance(event.value, str):
            self.action_apply_preset()

    def action_apply_preset(self) -> None:
        """Fill the forms from the preset and say what changed beside it.

        Choosing a preset applies it at once, so F5 right after used to apply it again and
        toast "applied" twice; the note says "nothing to change" instead.
        """
        name = self.query_one("#preset", Select).value
        note = self.query_one("#preset-note", Static)
        note.add_class("-shown")
        if not isinstance(name, str):
            note.update("choose a preset first")
            note.add_class("-warn")
            return
        preset = preset_values(name)
        skipped = self.offline_swaps(preset)
        cfg = self.wizard.cfg
        before = {"embedder": cfg.embedder.to_dict(), "reranker": cfg.reranker.to_dict()}
        emb = type(cfg.embedder).from_dict(
            {**before["embedder"], **preset["embedder"]}, prefix="embedder"
        )
        rr = type(cfg.reranker).from_dict(
            {**before["reranker"], **preset["reranker"]}, prefix="reranker"
        )
        changed = [
            f"{part}.{key}"
            for part, section in (("embedder", emb), ("reranker", rr))
            for key, value in section.to_dict().items()
            if before[part].get(key) != value
        ]
        if not changed:
            note.update(f"preset {name!r} is already applied: nothing to change")
            note.remove_class("-warn")
            return
        self.query_one("#emb-form", ConfigForm).set_values(emb)
        self.query_one("#rr-form", ConfigForm).set_values(rr)
        cfg.embedder, cfg.reranker = emb, rr  # type: ignore[assignment]
        lines = [f"✔ preset {name!r} applied: " + ", ".join(changed)]
        if skipped:
            warning = "no model Hub here, kept the current model for: " + ", ".join(skipped)
            lines.append("⚠ " + warning)
            self.notify(warning, title="offline", severity="warning")
        note.update("\n".join(lines))
        note.set_class(bool(skipped), "-warn")
        self.run_checks()

    def offline_swaps(self, preset: dict[str, dict[str, Any]]) -> list[str]:
        """Drop preset models this machine cannot load (no Hub, not cached, not packaged)."""
        from ragtune.engine.core.models import available_here, hub_reachable

        wanted = [
            (part, values["base_model"])
            for part, values in preset.items()
            if "base_model" in values
        ]
        if not wanted or all(available_here(m) for _, m in wanted) or hub_reachable(timeout=2.0):
            return []
        skipped = []
        for part, model in wanted:
            if not available_here(model):
                del preset[part]["base_model"]
                skipped.append(f"{part} {model}")
        return skipped

    def __init__(self) -> None:
        super().__init__()
        self.unplaced: list[str] = []
        """The engine's findings on settings this step has no field for (the best-model
        metric)."""
        self.proposal = ""
        """The engine's proposed training batch for this machine, in one line."""

    def on_mount(self) -> None:
        self.run_checks()
        self.call_after_refresh(self.place_proposal)

    def place_proposal(self) -> None:
        """Under the batch-size field (after its error and help lines), once the form is up."""
        form = self.query_one("#emb-form", ConfigForm)
        note = Static(self.proposal, id="batch-proposal")
        form.mount(note, after=form.query_one("#help-emb-form-batch_size"))

    def show_proposal(self, text: str) -> None:
        self.proposal = text
        for note in self.query("#batch-proposal").results(Static):
            note.update(text)

    def on_config_form_valid(self, message: ConfigForm.Valid) -> None:
        self.store(message.form.id or "", message.section)
        if message.form.id in ("emb-form", "rr-form"):
            self.run_checks()

    def run_checks(self) -> None:
        """The engine's model checks for the settings as they are now, in a worker (they
        load the model once, and may probe the Hub)."""
        cfg = self.wizard.cfg
        self.check_worker(self.snapshot(cfg), cfg.for_workspace(cfg.workspace_dir))
        self.proposal_worker(self.snapshot(cfg), cfg.for_workspace(cfg.workspace_dir))

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="batch-proposal",
        description="Proposing a batch size for this machine's GPU",
    )
    def proposal_worker(
        self, checked: dict[str, Any], cfg: RunConfig
    ) -> tuple[dict[str, Any], BatchProposal]:
        """The batch the engine proposes for the detected GPU memory (reads the model's config)."""
        with ENGINE_IMPORTS:
            return checked, self.wizard.engine.propose_batch(cfg)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="settings-check",
        description="Checking the settings against the models",
    )
    def check_worker(
        self, checked: dict[str, Any], cfg: RunConfig
    ) -> tuple[dict[str, Any], SettingsCheck]:
        """``checked``: the settings as the form holds them, to drop a result they outlived."""
        app = self.wizard
        with ENGINE_IMPORTS:
            return checked, app.engine.check_settings(cfg, app.ensure_workspace())

    @staticmethod
    def snapshot(cfg: RunConfig) -> dict[str, Any]:
        return {"embedder": cfg.embedder.to_dict(), "reranker": cfg.reranker.to_dict()}

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if group == "batch-proposal" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.show_proposal(f"no batch proposal: {type(error).__name__}: {error}")
        if group not in ("settings-check", "batch-proposal") or event.state != WorkerState.SUCCESS:
            return
        checked, result = event.worker.result
        if checked != self.snapshot(self.wizard.cfg):
            return  # the settings changed since: a newer check is on its way
        if group == "batch-proposal":
            self.show_proposal(proposal_line(result))
        else:
            self.show_checks(result)

    def show_checks(self, result: SettingsCheck) -> None:
        """Each finding on its field, like the config's own rules; the rest under the form."""
        notes: dict[str, list[str]] = {"embedder": [], "reranker": []}
        self.unplaced = []
        for form_id, part in (("#emb-form", "embedder"), ("#rr-form", "reranker")):
            form = self.query_one(form_id, ConfigForm)
            mine = {
                k.removeprefix(f"{part}."): v
                for k, v in result.problems.items()
                if k.startswith(f"{part}.")
            }
            form.set_external(mine)
            unplaced = [f"{part}.{k}: {v}" for k, v in mine.items() if k not in form.names]
            self.unplaced += unplaced
            notes[part] += [f"✘ {line}" for line in unplaced]
            notes[part] += [
                f"⚠ {k}: {v}" for k, v in result.notes.items() if k.startswith(f"{part}.")
            ]
        if result.derived_dims:
            dims = self.query_one("#emb-form-matryoshka_dims", Input)
            dims.placeholder = (
                "empty = "
                + ", ".join(map(str, result.derived_dims))
                + (f" (from the model's {result.model_dim})")
            )
        for part, note_id in (("embedder", "#emb-note"), ("reranker", "#rr-note")):
            self.query_one(note_id, Static).update("\n".join(notes[part]))

    def store(self, form_id: str, section: Any) -> None:
        cfg = self.wizard.cfg
        if form_id == "emb-form":
            cfg.embedder = section
        elif form_id == "rr-form":
            cfg.reranker = section
        elif form_id == "eval-form":
            # Stored absolute: an opened run resolves relative paths from its own folder,
            # not from where the wizard was started.
            if section.benchmark:
                folder = benchmark_folder(section.benchmark, self.wizard.browse_root)
                section = replace(section, benchmark=str(folder))
            cfg.eval = section

    def commit_state(self) -> None:
        for form in self.query(ConfigForm):
            section = form.validate_now()
            if section is not None:
                self.store(form.id or "", section)

    def leave_problem(self) -> str | None:
        for form in self.query(ConfigForm):
            problem = form.problem()
            if problem is not None:
                return f"{problem[0]}: {problem[1]}"
        return self.unplaced[0] if self.unplaced else None
