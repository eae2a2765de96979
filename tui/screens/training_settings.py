"""Step 6: the models and training settings, with presets, validated by the engine's config rules."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import Label, Select, Static
from textual.worker import Worker, WorkerState

from ragtune.engine.config import RunConfig
from ragtune.tui.engine_client import SettingsCheck
from ragtune.tui.errors import friendly
from ragtune.tui.widgets.text_entry import Input

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


@dataclass
class PresetProbe:
    """A preset applied but for its base models, which wait on the check that they load."""

    name: str
    changed: list[str]
    """The settings the preset already changed."""
    models: dict[str, str]
    """The base model it names, by part (embedder, reranker)."""
    kept: dict[str, str]
    """Each part's model when the preset was applied: one the user types meanwhile stays."""
    worker: Worker | None = None


def proposal_line(proposal: BatchProposal) -> str:
    """The engine's proposed training batch for this machine, and why, in one line."""
    if not proposal.memory_gib:
        return f"CPU: {proposal.reason}"
    return f"proposed for this GPU: batch_size = {proposal.batch_size}; {proposal.reason}"


def benchmark_folder(text: str, base: Path) -> Path:
    """A typed benchmark path as the run will read it: ``~`` expanded, relative to ``base``.

    Pure path arithmetic (no ``resolve``): it runs on the UI thread, and a stat on a hung
    network mount would freeze the wizard."""
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


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
    TrainingSettingsScreen #bench-note {
        height: auto; padding-left: 22; color: $text-muted; display: none;
    }
    TrainingSettingsScreen #bench-note.-shown { display: block; }
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

    BENCHMARK_DELAY_S: ClassVar[float] = 0.4
    """Typing pauses this long before the benchmark folder is checked: one check per path,
    not one per key."""

    def __init__(self) -> None:
        super().__init__()
        self.unplaced: list[str] = []
        """The engine's findings on settings this step has no field for (the best-model
        metric)."""
        self.proposal = ""
        """The engine's proposed training batch for this machine, in one line."""
        self.bench_folder = ""
        """The benchmark folder the latest check is (or was) about."""
        self.bench_pending = False
        """True from a change of the folder until the engine's verdict on it arrives."""
        self._bench_timer: Timer | None = None
        self._bench_worker: Worker | None = None
        self.preset_probe: PresetProbe | None = None
        """A preset whose base models wait on the check that they load here."""

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
            yield ConfigForm(
                cfg.eval,
                EVAL_FIELDS,
                prefix="eval",
                labels={"benchmark": "benchmark folder"},
                placeholders={"benchmark": "optional: a labelled folder, e.g. ~/data/my_eval"},
                id="eval-form",
            )
            yield Static("", id="bench-note")

    @on(Select.Changed, "#preset")
    def preset_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.action_apply_preset()

    def action_apply_preset(self) -> None:
        """Fill the forms from the preset at once and say what changed beside it; a base model
        it names that is not on this machine waits for the Hub probe, in a worker.

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
        cfg = self.wizard.cfg
        preset = preset_values(name)
        models = {
            part: values.pop("base_model")
            for part, values in preset.items()
            if values.get("base_model", getattr(cfg, part).base_model)
            != getattr(cfg, part).base_model
        }
        changed = self.apply_values(preset)
        pending = self.preset_probe
        if pending is not None and pending.name == name:  # F5 again before the probe answered
            changed = pending.changed + [key for key in changed if key not in pending.changed]
        if not models:
            self.preset_probe = None
            self.workers.cancel_group(self, "preset-models")
            self.show_preset_note(name, changed, [])
            return
        kept = {part: getattr(cfg, part).base_model for part in models}
        self.preset_probe = PresetProbe(name, changed, models, kept)
        lines = [f"✔ preset {name!r} applied: " + ", ".join(changed)] if changed else []
        wanted = ", ".join(f"{part} {model}" for part, model in models.items())
        lines.append(f"⋯ checking that {wanted} can be loaded here…")
        note.update("\n".join(lines))
        note.remove_class("-warn")
        self.preset_probe.worker = self.model_probe_worker(list(models.values()))

    def apply_values(self, preset: dict[str, dict[str, Any]]) -> list[str]:
        """Put ``preset``'s values in the forms and the config; the dotted settings changed."""
        cfg = self.wizard.cfg
        before = {"embedder": cfg.embedder.to_dict(), "reranker": cfg.reranker.to_dict()}
        emb = type(cfg.embedder).from_dict(
            {**before["embedder"], **preset.get("embedder", {})}, prefix="embedder"
        )
        rr = type(cfg.reranker).from_dict(
            {**before["reranker"], **preset.get("reranker", {})}, prefix="reranker"
        )
        changed = [
            f"{part}.{key}"
            for part, section in (("embedder", emb), ("reranker", rr))
            for key, value in section.to_dict().items()
            if before[part].get(key) != value
        ]
        if changed:
            self.query_one("#emb-form", ConfigForm).set_values(emb)
            self.query_one("#rr-form", ConfigForm).set_values(rr)
            cfg.embedder, cfg.reranker = emb, rr  # type: ignore[assignment]
            self.run_checks()
        return changed

    def show_preset_note(self, name: str, changed: list[str], skipped: list[str]) -> None:
        note = self.query_one("#preset-note", Static)
        if changed:
            lines = [f"✔ preset {name!r} applied: " + ", ".join(changed)]
        else:
            lines = [f"preset {name!r} is already applied: nothing to change"]
        if skipped:
            warning = "no model Hub here, kept the current model for: " + ", ".join(skipped)
            lines.append("⚠ " + warning)
            self.notify(warning, title="offline", severity="warning")
        note.update("\n".join(lines))
        note.set_class(bool(skipped), "-warn")

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="preset-models",
        description="Checking that the preset's base models load here",
    )
    def model_probe_worker(self, models: list[str]) -> list[str]:
        """The models that cannot load here (may probe the model Hub for up to 2 s)."""
        return self.wizard.engine.unloadable_models(models)

    def preset_models_checked(self, worker: Worker, unloadable: list[str]) -> None:
        """Take the preset's models that load; a model the user typed meanwhile stays."""
        probe = self.preset_probe
        if probe is None or worker is not probe.worker:
            return  # another preset was applied since: this answer is not about it
        self.preset_probe = None
        cfg = self.wizard.cfg
        loadable = {
            part: {"base_model": model}
            for part, model in probe.models.items()
            if model not in unloadable and getattr(cfg, part).base_model == probe.kept[part]
        }
        changed = probe.changed + self.apply_values(loadable)
        skipped = [f"{part} {model}" for part, model in probe.models.items() if model in unloadable]
        self.show_preset_note(probe.name, changed, skipped)

    def on_mount(self) -> None:
        self.run_checks()
        self.call_after_refresh(self.place_proposal)
        if self.wizard.cfg.eval.benchmark:
            self.watch_benchmark(self.wizard.cfg.eval.benchmark, delay=0)

    def place_proposal(self) -> None:
        """Under the batch-size field (after its error and help lines), once the form is up."""
        form = self.query_one("#emb-form", ConfigForm)
        note = Static(self.proposal, id="batch-proposal")
        form.mount(note, after=form.query_one("#help-emb-form-batch_size"))

    def show_proposal(self, text: str) -> None:
        self.proposal = text
        for note in self.query("#batch-proposal").results(Static):
            note.update(text)

    @on(ConfigForm.Valid, "#emb-form, #rr-form")
    def model_settings_changed(self, message: ConfigForm.Valid) -> None:
        self.store(message.form.id or "", message.section)
        self.run_checks()

    @on(ConfigForm.Valid, "#eval-form")
    def eval_settings_changed(self, message: ConfigForm.Valid) -> None:
        self.store("eval-form", message.section)
        self.watch_benchmark(self.wizard.cfg.eval.benchmark)

    def watch_benchmark(self, folder: str, delay: float | None = None) -> None:
        """Check ``folder`` once typing pauses (``delay``); until the verdict arrives the
        field shows neither the old folder's verdict nor a clean bill."""
        if folder == self.bench_folder:
            return
        self.bench_folder = folder
        self._bench_worker = None
        if self._bench_timer is not None:
            self._bench_timer.stop()
            self._bench_timer = None
        self.query_one("#eval-form", ConfigForm).set_external({})
        self.bench_pending = bool(folder)
        note = self.query_one("#bench-note", Static)
        note.set_class(bool(folder), "-shown")
        if not folder:
            self.workers.cancel_group(self, "benchmark-check")
            note.update("")
            return
        note.update(f"⋯ checking {folder}…")
        wait = self.BENCHMARK_DELAY_S if delay is None else delay
        self._bench_timer = self.set_timer(wait, self.check_benchmark_now)

    def check_benchmark_now(self) -> None:
        """Start the pending check without waiting for the pause in typing (F3 asks now)."""
        if self._bench_timer is not None:
            self._bench_timer.stop()
            self._bench_timer = None
        if self._bench_worker is None:
            self._bench_worker = self.benchmark_worker(self.bench_folder)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="benchmark-check",
        description="Checking the benchmark folder",
    )
    def benchmark_worker(self, folder: str) -> str | None:
        return self.wizard.engine.check_benchmark(Path(folder))

    def benchmark_checked(self, worker: Worker, problem: str | None) -> None:
        if worker is not self._bench_worker:
            return  # the folder changed since: its own check is on its way
        self.bench_pending = False
        self.query_one("#eval-form", ConfigForm).set_external(
            {"benchmark": problem} if problem else {}
        )
        note = self.query_one("#bench-note", Static)
        note.update("")
        note.remove_class("-shown")

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
        if event.state == WorkerState.SUCCESS and group == "benchmark-check":
            self.benchmark_checked(event.worker, event.worker.result)
        if event.state == WorkerState.SUCCESS and group == "preset-models":
            self.preset_models_checked(event.worker, event.worker.result)
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
            section = replace(section, benchmark=self.absolute_benchmark(section.benchmark))
            cfg.eval = section

    def absolute_benchmark(self, text: str) -> str:
        return str(benchmark_folder(text, self.wizard.browse_root)) if text.strip() else ""

    def commit_state(self) -> None:
        for form in self.query(ConfigForm):
            section = form.validate_now()
            if section is not None:
                self.store(form.id or "", section)

    def worker_failed(self, worker: Worker) -> bool | None:
        """A folder that cannot be listed (no permission) is that folder's problem, said on
        its field; a failed model probe leaves the current models, and says so."""
        if worker.group == "benchmark-check":
            self.benchmark_checked(worker, f"cannot read it: {friendly(worker.error)}")
            return True
        probe = self.preset_probe
        if worker.group == "preset-models" and probe is not None and worker is probe.worker:
            self.preset_probe = None
            kept = [f"{part} {model}" for part, model in probe.models.items()]
            self.show_preset_note(probe.name, probe.changed, kept)
        return None

    def leave_problem(self) -> str | None:
        """F3 goes on only with checked settings: a benchmark folder or a preset's model
        still being checked refuses it (the check starts now) rather than running the file
        system or the Hub probe on the UI thread, or skipping the check."""
        for form in self.query(ConfigForm):
            problem = form.problem()
            if problem is not None:
                return f"{problem[0]}: {problem[1]}"
        eval_form = self.query_one("#eval-form", ConfigForm)
        self.watch_benchmark(self.absolute_benchmark(eval_form.section.benchmark))
        if self.bench_pending:
            self.check_benchmark_now()
            return f"eval.benchmark: still checking {self.bench_folder}; F3 again in a moment"
        if self.preset_probe is not None:
            return (
                f"preset {self.preset_probe.name!r}: still checking that its base models can "
                "be loaded here; F3 again in a moment"
            )
        return self.unplaced[0] if self.unplaced else None
