"""The one place the wizard calls the engine; heavy modules are imported per call, in workers.

Every method returns the engine's own dataclasses (``Chunk``/``ChunkStats``,
``ConnectionResult``, ``CostEstimate``, ``GeneratedRow``, ``AskResult`` with
``Hit``s, ``Results``), so a screen renders exactly what the engine produced
and a contract test (tests/tui/test_engine_contract.py) runs every method on a
real tiny workspace. The few wrappers defined here exist only where the engine
returns a bare tuple or dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from ragtune.engine.config import LlmConfig, RunConfig
    from ragtune.engine.core.gpu import BatchProposal
    from ragtune.engine.core.records import Chunk
    from ragtune.engine.core.stages import StageStatus
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.deploy.results import DeployResults
    from ragtune.engine.evaluate.results import Results
    from ragtune.engine.generate.llm_connection import ConnectionResult
    from ragtune.engine.generate.llm_cost import CostEstimate
    from ragtune.engine.generate.review import ReviewEntry
    from ragtune.engine.generate.rows import GeneratedRow
    from ragtune.engine.ingest.chunking import ChunkStats
    from ragtune.engine.serve.ask import AskResult


@dataclass
class ScanResult:
    """Files a run would read, and the ones that cannot be read with the reason."""

    files: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DatasetPreview:
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass
class ChunkPreview:
    """The engine's sample chunks and statistics of chunking the first documents."""

    chunks: list[Chunk]
    stats: ChunkStats


@dataclass
class ExportResult:
    """Where export wrote (or pushed) each model, as the engine reported it."""

    paths: dict[str, str] = field(default_factory=dict)
    pushed: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"{name}: {where}" for name, where in self.paths.items()]
        lines += [f"{name} pushed to {where}" for name, where in self.pushed.items()]
        return "\n".join(lines) or "nothing to export yet"


@dataclass
class SettingsCheck:
    """The engine's own checks of the training settings that need a model, before any run.

    ``problems`` stop training (the engine raises the same reasons when a run starts);
    ``notes`` are decisions the run will make (a reranker it will not train). Keys are
    dotted settings, e.g. ``embedder.matryoshka_dims``.
    """

    problems: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    model_dim: int | None = None
    derived_dims: list[int] = field(default_factory=list)


@dataclass
class _Dimension:
    """What ``model_dims`` reads of a model: its size, so the check runs without keeping
    the model loaded."""

    size: int

    def get_embedding_dimension(self) -> int:
        return self.size


class RunHandle(Protocol):
    pid: int
    workspace: Path

    def alive(self) -> bool: ...

    def cancel(self) -> None: ...


def is_run_folder(path: Path) -> bool:
    """A folder ragtune ran in (or started to): the Start step lists it and never reuses it."""
    return (path / "config.toml").exists() or (path / ".state").is_dir()


class WizardEngine(Protocol):
    """What the wizard calls on the engine. Anything that may block (a model, the network,
    a scan of sources or outputs) is called from a thread worker; the few small reads and
    writes of one workspace file (the prompt, the review decisions, a run's pid file and one
    opened run's status) are made where the screen needs their answer.

    ``EngineClient`` is the real one; a test's fake implements this without subclassing it,
    and ``tests/tui/test_engine_protocol.py`` checks both against these signatures."""

    def discover(self, cfg: RunConfig) -> ScanResult: ...

    def preview_dataset(self, cfg: RunConfig, n: int = 5) -> DatasetPreview: ...

    def preview_chunks(self, cfg: RunConfig) -> ChunkPreview: ...

    def propose_batch(self, cfg: RunConfig) -> BatchProposal: ...

    def check_settings(self, cfg: RunConfig, ws: Workspace) -> SettingsCheck: ...

    def check_benchmark(self, folder: Path) -> str | None: ...

    def unloadable_models(self, names: list[str]) -> list[str]: ...

    def hub_reachable(self) -> bool: ...

    def llm_ready(self) -> bool: ...

    def warm_llm(self) -> float: ...

    def test_connection(self, llm: LlmConfig, api_key: str | None) -> ConnectionResult: ...

    def estimate_cost(self, cfg: RunConfig, ws: Workspace) -> CostEstimate: ...

    def sample_rows(
        self, cfg: RunConfig, ws: Workspace, k: int | None, api_key: str | None
    ) -> list[GeneratedRow]: ...

    def start_run(
        self, config_path: Path, stages: list[str] | None = None, api_key: str | None = None
    ) -> RunHandle: ...

    def attach(self, ws: Workspace) -> RunHandle | None: ...

    def stage_status(self, cfg: RunConfig, ws: Workspace) -> dict[str, StageStatus]: ...

    def queries_prompt(self, ws: Workspace) -> tuple[Path, str]: ...

    def save_queries_prompt(self, ws: Workspace, text: str) -> Path: ...

    def saved_review(self, ws: Workspace) -> list[ReviewEntry]: ...

    def save_review(self, ws: Workspace, entries: list[ReviewEntry]) -> None: ...

    def run_status(self, root: Path, cfg: RunConfig | None = None) -> dict[str, str]: ...

    def run_statuses(
        self, runs_dir: Path, current: RunConfig | None = None
    ) -> list[tuple[Path, dict[str, str]]]: ...

    def ask(
        self, ws: Workspace, question: str, top_k: int = 5, dim: int | None = None
    ) -> AskResult: ...

    def results(self, ws: Workspace) -> Results: ...

    def deploy_results(self, ws: Workspace) -> DeployResults: ...

    def export(self, cfg: RunConfig, ws: Workspace, push: bool) -> ExportResult: ...

    def model_card(self, cfg: RunConfig, ws: Workspace) -> str: ...


def _ingest(cfg: RunConfig) -> None:
    """Chunks current for these settings: a no-op when the ingest stage is up to date.

    ``run_pipeline`` already writes ``events.jsonl``; passing a workspace emitter
    as well wrote every ingest event twice.
    """
    from ragtune.engine.api import run_pipeline

    run_pipeline(cfg, stages=["ingest"])


class EngineClient:
    """Calls the real engine (a ``WizardEngine``). Every method may block: call it from a
    thread worker."""

    _dims: ClassVar[dict[tuple[str, bool], int]] = {}
    """Embedding sizes of models already loaded once, by (name, trust_remote_code)."""

    def embedding_dimension(self, name: str, trust_remote_code: bool = False) -> int:
        """The model's embedding size, from the model itself (its modules decide it)."""
        key = (name, trust_remote_code)
        if key not in self._dims:
            from ragtune.engine.core.models import load_embedder
            from ragtune.engine.embedder.train import embedding_dim

            model = load_embedder(name, device="cpu", trust_remote_code=trust_remote_code)
            self._dims[key] = embedding_dim(model)
        return self._dims[key]

    def propose_batch(self, cfg: RunConfig) -> BatchProposal:
        """The embedder's training batch for the smallest visible GPU's memory and why; with
        no GPU, ``cfg.embedder.batch_size`` unchanged and the reason."""
        from ragtune.engine.core.gpu import propose_batch_size

        return propose_batch_size(cfg.embedder)

    def check_settings(self, cfg: RunConfig, ws: Workspace) -> SettingsCheck:
        """What the engine checks before training (Matryoshka sizes against the model, the
        best-model metric against the sizes, the GPL teacher), and whether the rerank stage
        will train a reranker: the same functions the run calls."""
        from ragtune.engine.core.errors import ConfigError, RagtuneError
        from ragtune.engine.core.models import available_here, derive_dims, hub_reachable
        from ragtune.engine.embedder.train import check_best_metric, model_dims

        out = SettingsCheck()
        ecfg = cfg.embedder
        try:
            out.model_dim = self.embedding_dimension(ecfg.base_model, ecfg.trust_remote_code)
        except RagtuneError as exc:
            out.notes["embedder.base_model"] = (
                f"cannot load it here to check the sizes: {exc.message}"
            )
        else:
            out.derived_dims = derive_dims(out.model_dim)
            try:
                dims = model_dims(_Dimension(out.model_dim), ecfg)  # type: ignore[arg-type]
                check_best_metric(ecfg.metric_for_best_model, dims)
            except ConfigError as exc:
                out.problems[exc.key] = f"{exc.value!r} not allowed: {exc.allowed}"
        teacher = ecfg.pseudo_label_model
        if ecfg.loss == "gpl" and not available_here(teacher) and not hub_reachable(timeout=2.0):
            out.problems["embedder.pseudo_label_model"] = (
                f"loss gpl needs this trained cross-encoder and {teacher} is not on this "
                "machine (no model Hub here): set a local path"
            )
        if cfg.reranker.enabled:
            reason = self._reranker_skip(cfg, ws)
            if reason:
                out.notes["reranker.enabled"] = reason
        return out

    def check_benchmark(self, folder: Path) -> str | None:
        """Why the labelled folder cannot be evaluated on, or None: the engine's own check,
        which ``ragtune run`` makes before its first stage, said before training instead of
        after. It reads the file system, which a network mount can make slow."""
        from ragtune.engine.core.errors import InputError
        from ragtune.engine.evaluate.labels import check_benchmark

        try:
            check_benchmark(folder)
        except InputError as exc:
            return f"{exc.message}: {exc.hint}"
        return None

    def unloadable_models(self, names: list[str]) -> list[str]:
        """The models of ``names`` this machine cannot load: not a local folder, packaged or
        cached, and the model Hub out of reach (probed once per process, for up to 2 s)."""
        from ragtune.engine.core.models import available_here, hub_reachable

        missing = [name for name in names if not available_here(name)]
        if not missing or hub_reachable(timeout=2.0):
            return []
        return missing

    def hub_reachable(self) -> bool:
        """Whether the model Hub answers: probed once per process, for up to 2 s."""
        from ragtune.engine.core.models import hub_reachable

        return hub_reachable(timeout=2.0)

    @staticmethod
    def _reranker_skip(cfg: RunConfig, ws: Workspace) -> str:
        """Why the rerank stage will not train, from the engine's own rule; the training
        queries are the prepared data's when there is some, else the rule's threshold."""
        from ragtune.engine.core.errors import RagtuneError
        from ragtune.engine.core.payloads import PrepareSummary
        from ragtune.engine.reranker.train import has_classifier_head, untrainable_reason

        rc = cfg.reranker
        prepared = PrepareSummary.from_dict(ws.stage_summary("prepare"))
        try:
            if prepared.train_pairs is not None:
                reason = untrainable_reason(rc, int(prepared.train_pairs))
                return f"it will not be trained: {reason}" if reason else ""
            if rc.min_queries_fresh_head == 0 or has_classifier_head(
                rc.base_model, trust_remote_code=rc.trust_remote_code
            ):
                return ""
        except RagtuneError as exc:
            return f"cannot check the reranker base here: {exc.message}"
        return (
            f"it will not be trained unless the run makes {rc.min_queries_fresh_head} or more "
            f"training queries: {rc.base_model} has no trained reranking head, and fewer "
            "cannot teach a fresh one (reranker.min_queries_fresh_head)"
        )

    def discover(self, cfg: RunConfig) -> ScanResult:
        """Every file that would be read, each opened once so unreadable ones are named now."""
        from ragtune.engine.core.errors import RagtuneError
        from ragtune.engine.ingest import discover_sources, read_file

        result = ScanResult()
        for path, name in discover_sources(cfg.sources, cfg.base_dir).items():
            try:
                read_file(path, name)
            except RagtuneError as exc:
                reason = exc.message + (f" (fix: {exc.hint})" if exc.hint else "")
                result.errors.append((str(path), reason))
                continue
            result.files.append(Path(path))
        return result

    def preview_dataset(self, cfg: RunConfig, n: int = 5) -> DatasetPreview:
        from ragtune.engine.ingest import preview_dataset

        src = cfg.sources
        columns, rows = preview_dataset(
            src.dataset,
            config=src.dataset_config,
            split=src.dataset_split,
            n=n,
            base_dir=cfg.base_dir,
        )
        return DatasetPreview(columns=list(columns), rows=[dict(r) for r in rows])

    def preview_chunks(self, cfg: RunConfig) -> ChunkPreview:
        from ragtune.engine.ingest.stage import preview_chunks

        chunks, stats = preview_chunks(cfg, limit_docs=50, sample=5)
        return ChunkPreview(chunks=list(chunks), stats=stats)

    def llm_ready(self) -> bool:
        from ragtune.engine.generate.llm_connection import llm_ready

        return llm_ready()

    def warm_llm(self) -> float:
        """Import litellm now (seconds, once per process) so the first test or sample is quick."""
        from ragtune.engine.generate.llm_connection import warm_up

        return warm_up()

    def test_connection(self, llm: LlmConfig, api_key: str | None) -> ConnectionResult:
        from ragtune.engine.generate.llm_connection import test_connection

        return test_connection(llm, api_key=api_key)

    def estimate_cost(self, cfg: RunConfig, ws: Workspace) -> CostEstimate:
        """The full run's calls, tokens and price, from the workspace's own prompts (edits
        included); chunks the documents first when needed."""
        from ragtune.engine.core.records import read_chunks
        from ragtune.engine.generate.llm_cost import estimate_workspace_cost

        _ingest(cfg)
        return estimate_workspace_cost(
            read_chunks(ws.chunks_path), cfg.generation.llm, ws.prompts_dir
        )

    def ingest(self, cfg: RunConfig, ws: Workspace) -> None:
        """Chunks must exist before samples or cost estimates; resumable like any stage."""
        _ingest(cfg)

    def sample_rows(
        self, cfg: RunConfig, ws: Workspace, k: int | None, api_key: str | None
    ) -> list[GeneratedRow]:
        """``ragtune generate --sample``'s own sampler: chunks brought up to date, the
        workspace lock held (refused while a run writes here); the LLM path sends real calls."""
        from ragtune.engine.api import sample_generation

        return sample_generation(cfg, k=k, api_key=api_key)[0]

    def start_run(
        self, config_path: Path, stages: list[str] | None = None, api_key: str | None = None
    ) -> RunHandle:
        """``api_key``: one typed into the wizard, handed to the child in its environment."""
        from ragtune.engine.api import start_run_process

        return start_run_process(config_path, stages=stages, api_key=api_key)

    def attach(self, ws: Workspace) -> RunHandle | None:
        from ragtune.engine.api import attach_run_process

        return attach_run_process(ws)

    def ask(
        self, ws: Workspace, question: str, top_k: int = 5, dim: int | None = None
    ) -> AskResult:
        """Tuned hits in ``.hits``, the base models' in ``.base_hits``."""
        from ragtune.engine.serve.ask import ask

        return ask(ws, question, top_k=top_k, dim=dim, compare=True)

    def stage_status(self, cfg: RunConfig, ws: Workspace) -> dict[str, StageStatus]:
        """Per stage done / stale (and what changed) / to do / running, for the wizard's
        config as it is now: the engine's own plan, what ``ragtune status`` prints."""
        from ragtune.engine.stages import stage_statuses

        return stage_statuses(ws, cfg.for_workspace(ws.root))

    def queries_prompt(self, ws: Workspace) -> tuple[Path, str]:
        """The file and text of the prompt the LLM gets per chunk (written from the default
        when the workspace has none yet)."""
        from ragtune.engine.generate.llm_prompts import PROMPT_FILES, Prompts

        prompts = Prompts.load(ws.prompts_dir)
        return ws.prompts_dir / PROMPT_FILES["queries"][0], prompts.queries

    def save_queries_prompt(self, ws: Workspace, text: str) -> Path:
        from ragtune.engine.generate.llm_prompts import write_prompt

        return write_prompt(ws.prompts_dir, "queries", text)

    def saved_review(self, ws: Workspace) -> list[ReviewEntry]:
        from ragtune.engine.generate.review import load_review

        return load_review(ws)

    def save_review(self, ws: Workspace, entries: list[ReviewEntry]) -> None:
        """The decisions, to review.json; the generate stage is marked to apply them."""
        from ragtune.engine.generate.review import save_review

        save_review(ws, entries)

    def run_status(self, root: Path, cfg: RunConfig | None = None) -> dict[str, str]:
        """Each stage's state in the run folder ``root``, judged by ``cfg`` (the wizard's
        config as it is now) or, without one, by the folder's own config.toml."""
        from ragtune.engine.core.workspace import Workspace
        from ragtune.engine.stages import stage_statuses

        ws = Workspace(root)
        cfg = cfg.for_workspace(ws.root) if cfg is not None else None
        return {stage: st.state for stage, st in stage_statuses(ws, cfg).items()}

    def run_statuses(
        self, runs_dir: Path, current: RunConfig | None = None
    ) -> list[tuple[Path, dict[str, str]]]:
        """Run folders under ``runs_dir`` and their stage states. ``current`` is the open
        run's config as the wizard holds it, so a setting changed a moment ago marks its
        stages stale before it reaches config.toml."""
        if not runs_dir.is_dir():
            return []
        out = []
        for child in sorted(runs_dir.iterdir()):
            if child.is_dir() and is_run_folder(child):
                root = child.resolve()
                cfg = current if current is not None and current.workspace_dir == root else None
                out.append((child, self.run_status(root, cfg)))
        return out

    def results(self, ws: Workspace) -> Results:
        from ragtune.engine.evaluate.results import read_results

        return read_results(ws.metrics_path)

    def deploy_results(self, ws: Workspace) -> DeployResults:
        from ragtune.engine.deploy.results import read_deploy

        return read_deploy(ws.metrics_path)

    def export(self, cfg: RunConfig, ws: Workspace, push: bool) -> ExportResult:
        from ragtune.engine.api import workspace_emitter
        from ragtune.engine.export.stage import export_models

        out = export_models(cfg, ws, workspace_emitter(ws), push=push)
        return export_result(out)

    def model_card(self, cfg: RunConfig, ws: Workspace) -> str:
        from ragtune.engine.export.stage import model_card_text

        return model_card_text(cfg, ws)


def export_result(out: dict[str, Any]) -> ExportResult:
    """The export stage's summary dict, split into local paths and pushed repos."""
    result = ExportResult()
    for key, value in (out or {}).items():
        if isinstance(value, dict):
            for inner, where in value.items():
                target = result.pushed if "push" in key or "repo" in key else result.paths
                target[f"{key} {inner}".strip()] = str(where)
        elif value not in (None, "", [], False):
            target = (
                result.pushed if "push" in key or "repo" in key or "url" in key else result.paths
            )
            target[key.replace("_", " ")] = str(value)
    return result
