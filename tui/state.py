"""The wizard's state for one run: config, workspace, typed key, running child, sample review.

Screens read and change this one object (``app.state``) instead of setting
attributes on the app; "New run" replaces it whole, so nothing of the previous
run (picked files, LLM settings, the typed key, review decisions) leaks into
the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.core.workspace import Workspace

if TYPE_CHECKING:
    from ragtune.engine.generate.llm_cost import CostEstimate
    from ragtune.engine.generate.review import ReviewEntry
    from ragtune.tui.engine_client import RunHandle


@dataclass
class WizardState:
    cfg: RunConfig = field(default_factory=RunConfig)
    workspace: Workspace | None = None
    api_key: str | None = None
    """Typed in the LLM step; memory only, never written to config.toml, logs or events."""
    run_handle: RunHandle | None = None
    review: list[ReviewEntry] = field(default_factory=list)
    """The current sample rows with their decisions, as saved to the workspace's review.json."""
    notes: list[str] = field(default_factory=list)
    estimate: tuple[CostEstimate, str, tuple[str, str]] | None = None
    """The last cost estimate of the LLM step, its time, and the model and api base it was
    made for: repeated in the confirm before a run that pays for calls."""
    call_latency_s: float | None = None
    """One test call's round trip, for the time estimate."""
    """What the wizard changed on its own (offline model swaps), shown once on the first screen."""

    @classmethod
    def new_run(cls, name: str, root: Path) -> WizardState:
        """A clean config for a new run writing into ``root``, with models that can load here."""
        from ragtune.engine.core.models import offline_defaults

        cfg = RunConfig()
        cfg.run.name = name
        cfg.run.workspace = str(root)
        state = cls(cfg=cfg)
        state.notes = offline_defaults(cfg)
        return state

    @classmethod
    def open(cls, root: Path) -> WizardState:
        """The run's config.toml and sample review, or a new config that writes into ``root``.

        The review is read here so a reopened run shows its reviewed rows as they were
        saved (edited text included) before anything is sampled again.
        """
        from ragtune.engine.generate.review import load_review

        root = root.expanduser().resolve()
        config = root / "config.toml"
        if config.exists():
            state = cls(cfg=load_config(config))
        else:
            state = cls.new_run(root.name, root)
        state.workspace = Workspace.create(state.cfg.workspace_dir)
        state.review = load_review(state.workspace)
        return state

    def run_in_progress(self) -> int | None:
        """The pid of a run working in this workspace (a child we started, or any process
        holding the engine's lock), else None; while one runs, it owns config.toml."""
        handle = self.run_handle
        if handle is not None and handle.alive():
            return handle.pid
        if self.workspace is None:
            return None
        return self.workspace.lock().holder()

    def paid_run_note(self) -> str:
        """For the confirm before a run that calls an LLM: its calls, tokens, price and time
        as last estimated, or that it was not estimated for these settings."""
        gen = self.cfg.generation
        if not gen.calls_llm:
            return ""
        llm = gen.llm
        if self.estimate is None or self.estimate[2] != (llm.model, llm.api_base):
            return (
                f" The LLM ({llm.model}) is called for every chunk and may cost money; no "
                "estimate for these settings yet (F6 on step 4)."
            )
        est, time, _ = self.estimate
        price = f"about ${est.usd:,.2f}" if est.usd is not None else "price unknown"
        return (
            f" The LLM ({llm.model}) gets {est.calls:,} calls, ~{est.input_tokens:,} input and "
            f"~{est.output_tokens:,} output tokens: {price}; time {time}."
        )

    def ensure_workspace(self) -> Workspace:
        if self.workspace is None or self.workspace.root != self.cfg.workspace_dir:
            self.workspace = Workspace.create(self.cfg.workspace_dir)
        return self.workspace
