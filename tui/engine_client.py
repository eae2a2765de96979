"""The one place the wizard calls the engine; heavy modules are imported per call, in workers.

Results are normalised into the small dataclasses below so screens render the
same shapes whatever the engine returns (dataclass, dict or tuple), and tests
swap in a fake client that replays recorded data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.config import LlmConfig, RunConfig
    from engine.core.workspace import Workspace


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from a dataclass, object or dict alike."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    if isinstance(obj, dict):
        return dict(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


@dataclass
class ScanResult:
    files: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DatasetPreview:
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass
class ChunkPreview:
    samples: list[dict[str, Any]]
    stats: dict[str, Any]
    histogram: list[tuple[str, int]]


@dataclass
class Connection:
    ok: bool
    message: str
    latency_s: float | None = None


@dataclass
class AskResult:
    """Ranked (source, score, text) per model label, e.g. {"base": [...], "tuned": [...]}."""

    ranked: dict[str, list[tuple[str, float, str]]]


class RunHandle(Protocol):
    pid: int
    workspace: Path

    def alive(self) -> bool: ...

    def cancel(self) -> None: ...


def _histogram(stats: Any) -> list[tuple[str, int]]:
    """Bins as (label, count); the engine labels bins "lo-hi" in tokens."""
    hist = field_of(stats, "histogram", None) or []
    if isinstance(hist, dict):
        return [(str(k), int(v)) for k, v in hist.items()]
    out = []
    for item in hist:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            out.append((str(item[0]), int(item[-1])))
    return out


class EngineClient:
    """Calls the real engine. Every method may block: call it from a thread worker."""

    def discover(self, cfg: RunConfig) -> ScanResult:
        """Every file that would be read, each opened once so unreadable ones are named now."""
        from engine.core.errors import RagtuneError
        from engine.ingest import discover_files, read_file

        result = ScanResult()
        for path in discover_files(cfg.sources, cfg.base_dir):
            try:
                read_file(path, cfg.base_dir)
            except RagtuneError as exc:
                reason = exc.message + (f" (fix: {exc.hint})" if exc.hint else "")
                result.errors.append((str(path), reason))
                continue
            result.files.append(Path(path))
        return result

    def preview_dataset(self, cfg: RunConfig, n: int = 5) -> DatasetPreview:
        from engine.ingest import preview_dataset

        src = cfg.sources
        columns, rows = preview_dataset(
            src.dataset,
            config=src.dataset_config,
            split=src.dataset_split,
            n=n,
            base_dir=cfg.base_dir,
        )
        return DatasetPreview(columns=list(columns), rows=[as_dict(r) for r in rows])

    def preview_chunks(self, cfg: RunConfig) -> ChunkPreview:
        try:
            from engine.ingest.chunking import preview_chunks
        except ImportError:
            from engine.ingest import preview_chunks

        chunks, stats = preview_chunks(cfg, limit_docs=50, sample=5)
        stats_d = as_dict(stats) if stats is not None else {}
        hist = _histogram(stats)
        stats_d.pop("histogram", None)
        return ChunkPreview(samples=[as_dict(c) for c in chunks], stats=stats_d, histogram=hist)

    def test_connection(self, llm: LlmConfig, api_key: str | None) -> Connection:
        from engine.generate.llm import test_connection

        res = test_connection(llm, api_key=api_key)
        return Connection(
            ok=bool(field_of(res, "ok")),
            message=str(field_of(res, "message", "")),
            latency_s=field_of(res, "latency_s"),
        )

    def estimate_cost(self, cfg: RunConfig, ws: Workspace) -> dict[str, Any]:
        from engine.core.records import read_chunks
        from engine.generate.llm import estimate_cost

        chunks = read_chunks(ws.chunks_path) if ws.chunks_path.exists() else []
        return as_dict(estimate_cost(chunks, cfg.generation.llm))

    def ingest(self, cfg: RunConfig, ws: Workspace) -> None:
        """Chunks must exist before samples or cost estimates; resumable like any stage."""
        from engine.api import run_pipeline, workspace_emitter

        run_pipeline(cfg, events=workspace_emitter(ws), stages=["ingest"])

    def sample_rows(
        self, cfg: RunConfig, ws: Workspace, k: int | None, api_key: str | None
    ) -> list[dict[str, Any]]:
        from engine.core.records import read_chunks
        from engine.generate.llm import sample_rows

        chunks = read_chunks(ws.chunks_path) if ws.chunks_path.exists() else []
        rows = sample_rows(cfg, ws, chunks, k=k, api_key=api_key)
        return [as_dict(r) for r in rows]

    def start_run(self, config_path: Path, stages: list[str] | None = None) -> RunHandle:
        from engine.api import start_run_process

        return start_run_process(config_path, stages=stages)

    def attach(self, ws: Workspace) -> RunHandle | None:
        from engine.api import attach_run_process

        return attach_run_process(ws)

    def ask(
        self, ws: Workspace, question: str, top_k: int = 5, dim: int | None = None
    ) -> AskResult:
        from engine.serve.ask import ask

        result = ask(ws, question, top_k=top_k, dim=dim, compare=True)
        return AskResult(ranked=normalise_ask(result))

    def export(self, cfg: RunConfig, ws: Workspace, push: bool) -> Any:
        from engine.api import workspace_emitter
        from engine.export.stage import export_models

        return export_models(cfg, ws, workspace_emitter(ws), push=push)

    def model_card(self, cfg: RunConfig, ws: Workspace) -> str:
        from engine.export.stage import model_card_text

        return model_card_text(cfg, ws)


def normalise_ask(result: Any) -> dict[str, list[tuple[str, float, str]]]:
    """Accept {"base": hits, "tuned": hits} or an object with those attributes; hits are dicts/objects."""
    out: dict[str, list[tuple[str, float, str]]] = {}
    for label in ("base", "tuned"):
        hits = field_of(result, label, None)
        if hits is None:
            continue
        hits = field_of(hits, "hits", hits)
        rows = []
        for hit in hits:
            rows.append(
                (
                    str(field_of(hit, "source", "")),
                    float(field_of(hit, "score", 0.0) or 0.0),
                    str(field_of(hit, "text", "")),
                )
            )
        out[label] = rows
    return out
