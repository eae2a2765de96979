"""Ask a workspace a question: retrieve, rerank, optionally answer with citations (CLI and TUI)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.config import EmbedderConfig, RunConfig, load_config
from ragtune.engine.core.errors import InputError, OfflineError, RagtuneError
from ragtune.engine.core.records import Chunk, read_chunks
from ragtune.engine.core.search import topk_search, truncate_normalize
from ragtune.engine.core.workspace import Workspace, fingerprint
from ragtune.engine.evaluate.saved import model_identity
from ragtune.engine.reranker.evaluate import encode_corpus, encode_queries
from ragtune.engine.reranker.evaluate import fuse as fuse_reranker
from ragtune.engine.retrieval.bm25 import Bm25Index
from ragtune.engine.retrieval.fusion import FusionSettings, fuse

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder, SentenceTransformer

__all__ = ["AskResult", "Hit", "Searcher", "ask", "clear_cache", "get_searcher", "render_result"]


@dataclass
class Hit:
    rank: int
    chunk_id: str
    source: str
    page: int | None
    heading: str
    title: str
    text: str
    retriever_score: float
    rerank_score: float | None = None
    score: float = 0.0
    dense_rank: int | None = None
    """Where the hit came from in a hybrid search (1-based; None = not in that list)."""
    bm25_rank: int | None = None
    fused_score: float | None = None

    @property
    def label(self) -> str:
        """How a citation names the passage: source, page and heading when known."""
        source = self.source
        if source.startswith("/"):  # older workspaces named sources by absolute path
            source = "/".join(source.split("/")[-2:])
        parts = [source or self.chunk_id]
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.heading:
            parts.append(self.heading)
        return ", ".join(parts)


@dataclass
class AskResult:
    question: str
    hits: list[Hit]
    base_hits: list[Hit] | None = None
    answer: str | None = None
    citations: list[Hit] = field(default_factory=list)
    dim: int | None = None
    reranked: bool = False
    fusion_weight: float | None = None
    models: dict[str, str] = field(default_factory=dict)
    base_models: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    retriever: str = ""
    """What found the hits, in words: the recommended retriever and its fusion."""
    fine_tuned: bool = True
    """False while the workspace has nothing of its own to search with (no trained model, no
    recommended retriever: before or during its first training): ``hits`` then come from the
    base model, and a front end must not show them as the fine-tuned model's."""


def workspace_config(ws: Workspace) -> RunConfig:
    return load_config(ws.config_path) if ws.config_path.exists() else RunConfig()


class Searcher:
    """Models loaded and the corpus encoded once, for many questions.

    Corpus embeddings are cached in ``<workspace>/index/`` under a fingerprint of the model
    files and the chunk ids, so a new process (``ragtune ask`` run twice) skips encoding too.
    """

    def __init__(
        self,
        ws: Workspace,
        embedder: str,
        reranker: str | None = None,
        *,
        fusion_weight: float = 1.0,
        candidates: int = 30,
        device: str | None = None,
        batch_size: int = 0,
        precision: str = "auto",
        reranker_precision: str = "auto",
        max_length: int | None = None,
        embedder_cfg: EmbedderConfig | None = None,
        trust_remote_code: bool = False,
        bm25: Bm25Index | None = None,
        fusion: FusionSettings | None = None,
    ) -> None:
        """``embedder_cfg`` supplies the run's query/document prompts, so a base model is
        searched the way it was evaluated (a fine-tuned model carries them already).
        With ``bm25`` the dense ranking is fused with BM25's (``fusion``); with an empty
        ``embedder`` BM25 alone searches. Models run in the inference dtype for ``precision``
        (bf16/fp16 on a CUDA GPU, float32 elsewhere); ``batch_size`` 0 is sized to the device."""
        from ragtune.engine.core.models import (
            encode_batch_size,
            for_inference,
            load_cross_encoder,
            load_embedder,
        )
        from ragtune.engine.embedder.train import attach_prompts

        if not ws.chunks_path.exists():
            raise InputError(
                "this workspace has no chunks yet",
                where=str(ws.root),
                hint="run the pipeline first: ragtune run CONFIG",
            )
        self.ws = ws
        self.embedder_name = embedder
        self.reranker_name = reranker
        self.fusion_weight = fusion_weight
        self.candidates = candidates
        self.chunks: list[Chunk] = read_chunks(ws.chunks_path)
        self.bm25 = bm25
        self.fusion = fusion or FusionSettings()
        self.row_of = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        if bm25 is not None and set(bm25.ids) != set(self.row_of):
            raise InputError(
                "the BM25 index does not cover this workspace's chunks",
                where=str(ws.root),
                hint="run the index stage again: ragtune run CONFIG --stages index",
            )
        trust = embedder_cfg.trust_remote_code if embedder_cfg else False
        self.embedder: SentenceTransformer | None = None
        if embedder:
            self.embedder = load_embedder(embedder, device=device, trust_remote_code=trust)
            for_inference(self.embedder, precision, str(self.embedder.device))
        elif bm25 is None:
            raise ValueError("a searcher needs a dense model, a BM25 index or both")
        if embedder_cfg is not None and self.embedder is not None:
            attach_prompts(self.embedder, embedder_cfg)
        self.reranker: CrossEncoder | None = None
        if reranker:
            kw = {"max_length": max_length} if max_length else {}
            self.reranker = load_cross_encoder(
                reranker, device=device, trust_remote_code=trust_remote_code, **kw
            )
            for_inference(self.reranker, reranker_precision, str(self.reranker.device))
        loaded = self.embedder if self.embedder is not None else self.reranker
        # After loading, so a GPU's batch is sized to the memory the models left.
        self.batch_size = encode_batch_size(
            batch_size, str(loaded.device) if loaded is not None else "cpu"
        )
        self.corpus_emb = self._corpus_embeddings() if self.embedder is not None else None
        self._lock = threading.Lock()
        # Things a user should know about this searcher's models, repeated on every answer.
        self.notes: list[str] = []
        self.fine_tuned = False
        """Whether something this workspace's runs made takes part: a trained embedder or
        reranker, or the retriever evaluation recommended."""

    def _corpus_embeddings(self) -> np.ndarray:
        assert self.embedder is not None
        fp = fingerprint(
            model_identity(self.embedder_name),
            dict(self.embedder.prompts),
            str(next(self.embedder.parameters()).dtype),
            [c.chunk_id for c in self.chunks],
        )
        path = self.ws.root / "index" / f"corpus-{fp}.npy"
        if path.exists():
            emb = np.load(path)
            if emb.shape[0] == len(self.chunks):
                return emb
        emb = self._evaluated_corpus()
        if emb is None:
            emb = encode_corpus(self.embedder, [c.text for c in self.chunks], self.batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        tmp.replace(path)
        return emb

    def _evaluated_corpus(self) -> np.ndarray | None:
        """The evaluate stage's embeddings of these chunks by this model, unit length in
        chunk order, when it saved them (same model files, prompt, dtype and texts)."""
        from ragtune.engine.evaluate.saved import saved_unit_corpus

        assert self.embedder is not None
        corpus = {c.chunk_id: c.text for c in self.chunks}
        if len(corpus) != len(self.chunks):
            return None
        return saved_unit_corpus(self.ws, self.embedder, self.embedder_name, corpus)

    @property
    def full_dim(self) -> int:
        return int(self.corpus_emb.shape[1]) if self.corpus_emb is not None else 0

    @property
    def hybrid(self) -> bool:
        return self.bm25 is not None and self.embedder is not None

    def describe(self) -> str:
        """What ranks the hits, in words."""
        if self.embedder is None:
            return "BM25"
        if self.bm25 is None:
            return "dense retriever"
        return f"hybrid: {self.fusion.describe()}"

    def _first_stage(
        self, question: str, k: int, dim: int | None
    ) -> list[tuple[int, float, int | None, int | None, float | None]]:
        """(chunk row, retriever score, dense rank, BM25 rank, fused score), best first."""
        dense: list[tuple[str, float]] = []
        if self.embedder is not None:
            assert self.corpus_emb is not None
            q = encode_queries(self.embedder, [question], self.batch_size)
            corpus = self.corpus_emb
            if dim and dim < self.full_dim:
                q, corpus = truncate_normalize(q, dim), truncate_normalize(corpus, dim)
            depth = max(k, self.fusion.depth) if self.bm25 is not None else k
            scores, idx = topk_search(q, corpus, depth)
            dense = [
                (self.chunks[int(i)].chunk_id, float(v))
                for i, v in zip(idx[0], scores[0], strict=True)
            ]
            if self.bm25 is None:
                return [(self.row_of[c], v, r, None, None) for r, (c, v) in enumerate(dense, 1)]
        assert self.bm25 is not None
        lexical = self.bm25.search([question], max(k, self.fusion.depth))[0]
        if self.embedder is None:
            return [(self.row_of[c], v, None, r, None) for r, (c, v) in enumerate(lexical[:k], 1)]
        fused = fuse(dense, lexical, self.fusion)[:k]
        return [(self.row_of[h.doc_id], h.score, h.dense_rank, h.bm25_rank, h.score) for h in fused]

    def search(
        self, question: str, top_k: int = 5, *, dim: int | None = None, rerank: bool = True
    ) -> list[Hit]:
        if not question.strip():
            raise InputError("the question is empty", hint="type a question")
        if dim is not None and self.embedder is not None and not 0 < dim <= self.full_dim:
            raise InputError(
                f"dim {dim} is outside 1..{self.full_dim}",
                hint=f"pick a Matryoshka size up to {self.full_dim}",
            )
        use_reranker = rerank and self.reranker is not None and self.fusion_weight > 0
        with self._lock:
            k = max(top_k, self.candidates) if use_reranker else top_k
            first = self._first_stage(question, k, dim)
            rows = [f[0] for f in first]
            retr = np.asarray([f[1] for f in first], dtype=np.float32)
            rr: np.ndarray | None = None
            final = retr
            if use_reranker and rows:
                import torch

                pairs = [(question, self.chunks[i].text) for i in rows]
                rr = np.asarray(
                    self.reranker.predict(  # type: ignore[union-attr]
                        pairs,
                        batch_size=self.batch_size,
                        activation_fn=torch.nn.Identity(),
                        show_progress_bar=False,
                    ),
                    dtype=np.float32,
                ).reshape(-1)
                final = fuse_reranker(retr, rr, self.fusion_weight)
        ranking = np.argsort(-np.asarray(final), kind="stable")[:top_k]
        hits = []
        for rank, j in enumerate(ranking, start=1):
            row, score, dense_rank, bm25_rank, fused = first[int(j)]
            c = self.chunks[row]
            hits.append(
                Hit(
                    rank=rank,
                    chunk_id=c.chunk_id,
                    source=c.source,
                    page=c.page,
                    heading=c.heading,
                    title=c.title,
                    text=c.text,
                    retriever_score=float(score),
                    rerank_score=float(rr[j]) if rr is not None else None,
                    score=float(final[j]),
                    dense_rank=dense_rank if self.bm25 is not None else None,
                    bm25_rank=bm25_rank,
                    fused_score=fused,
                )
            )
        return hits


def reranker_settings(ws: Workspace) -> dict[str, Any]:
    from ragtune.engine.reranker.train import SETTINGS_FILE

    path = ws.reranker_dir / SETTINGS_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def recommended_retriever(
    cfg: RunConfig, ws: Workspace
) -> tuple[str, Bm25Index | None, FusionSettings | None, str]:
    """The dense model (empty for none), BM25 index and fusion that evaluation recommended,
    and a note saying so; the fine-tuned dense model when nothing was recommended yet."""
    from ragtune.engine.evaluate.results import read_results
    from ragtune.engine.reranker.train import embedder_source
    from ragtune.engine.retrieval.stage import load_index

    results = read_results(ws.metrics_path)
    rec = results.recommendation
    if rec is None:
        return embedder_source(cfg, ws), None, None, "no recommended retriever yet (evaluate " \
            "has not run): searching with the fine-tuned dense model"  # fmt: skip
    dense = ""
    if rec.uses_dense:
        dense = embedder_source(cfg, ws) if rec.fine_tuned else cfg.embedder.base_model
    bm25 = load_index(ws) if rec.uses_bm25 else None
    ndcg = f"nDCG@10 {rec.ndcg:.3f} on {rec.queries} {rec.query_source}"
    return (
        dense,
        bm25,
        results.fusion,
        f"searching with the recommended retriever, {rec.label} ({ndcg})",
    )


_CACHE: dict[tuple[str, str, str | None], tuple[Any, Searcher]] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _build(ws: Workspace, which: str, device: str | None) -> Searcher:
    from ragtune.engine.evaluate.results import read_results
    from ragtune.engine.reranker.train import has_classifier_head

    cfg = workspace_config(ws)
    top = cfg.reranker.top_k
    if which == "tuned":
        reranker = str(ws.reranker_dir) if (ws.reranker_dir / "config.json").exists() else None
        settings = reranker_settings(ws)
        # The weight the rerank stage measured and saved; 0 means it did not beat the
        # retriever, so it is not even loaded.
        weight = float(settings.get("fusion_weight", 0.0))
        notes = []
        if not (ws.embedder_dir / "modules.json").exists():
            notes.append(
                "no fine-tuned embedder in this workspace yet: results come from the base "
                f"model {cfg.embedder.base_model}"
            )
        if reranker and weight <= 0:
            notes.append(
                "the fine-tuned reranker did not beat the retriever on held-out queries, "
                "so results are the retriever's order"
            )
            reranker = None
        embedder, bm25, fusion, why = recommended_retriever(cfg, ws)
        notes.append(why)
        searcher = Searcher(
            ws,
            embedder,
            reranker,
            fusion_weight=weight,
            candidates=int(settings.get("top_k", top)),
            device=device,
            batch_size=cfg.eval.batch_size,
            precision=cfg.embedder.precision,
            reranker_precision=cfg.reranker.precision,
            max_length=settings.get("max_length"),
            embedder_cfg=cfg.embedder,
            trust_remote_code=cfg.reranker.trust_remote_code,
            bm25=bm25,
            fusion=fusion,
        )
        searcher.notes = notes
        searcher.fine_tuned = (
            (ws.embedder_dir / "modules.json").exists()
            or bool(reranker)
            or read_results(ws.metrics_path).recommendation is not None
        )
        return searcher
    notes = []
    base_reranker: str | None = cfg.reranker.base_model if cfg.reranker.enabled else None
    if base_reranker and not has_classifier_head(base_reranker):
        notes.append(
            f"base reranker {base_reranker} has no trained head (or cannot be loaded here): "
            "the base side is the base retriever alone"
        )
        base_reranker = None
    searcher = Searcher(
        ws,
        cfg.embedder.base_model,
        base_reranker,
        fusion_weight=1.0,
        candidates=top,
        device=device,
        batch_size=cfg.eval.batch_size,
        precision=cfg.embedder.precision,
        reranker_precision=cfg.reranker.precision,
        embedder_cfg=cfg.embedder,
        trust_remote_code=cfg.reranker.trust_remote_code,
    )
    searcher.notes = notes
    return searcher


def models_identity(ws: Workspace, which: str = "tuned") -> Any:
    """What a searcher of ``ws`` was built from: the config, and for "tuned" the saved
    models' files and the evaluation that recommends the retriever.

    A searcher cached in a long-lived process (the wizard) is rebuilt when this changes, so a
    model that training saved after the first question is the one the next question uses.
    """
    from ragtune.engine.reranker.train import SETTINGS_FILE

    def stamp(path: Path) -> Any:
        return (path.stat().st_size, path.stat().st_mtime_ns) if path.exists() else None

    if which != "tuned":
        return stamp(ws.config_path)
    return (
        stamp(ws.config_path),
        stamp(ws.metrics_path),
        model_identity(str(ws.embedder_dir)),
        model_identity(str(ws.reranker_dir)),
        stamp(ws.reranker_dir / SETTINGS_FILE),
    )


def get_searcher(ws: Workspace, which: str = "tuned", *, device: str | None = None) -> Searcher:
    """The cached searcher of a workspace: "tuned" (its models) or "base" (the base models),
    rebuilt when the workspace's config, saved models or recommendation changed since."""
    key = (str(ws.root), which, device)
    identity = models_identity(ws, which)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None and cached[0] == identity:
        return cached[1]
    searcher = _build(ws, which, device)
    with _CACHE_LOCK:
        _CACHE[key] = (identity, searcher)
    return searcher


ANSWER_PROMPT = """Answer the question using only the numbered passages below. Cite every claim \
with the passage number in square brackets, like [2]. If the passages do not contain the \
answer, say so.

{passages}

<question>{question}</question>"""


def build_answer_messages(question: str, hits: list[Hit]) -> list[dict[str, str]]:
    passages = "\n\n".join(f"[{h.rank}] ({h.label})\n{h.text}" for h in hits)
    return [
        {"role": "system", "content": "You answer from the given sources and cite them."},
        {"role": "user", "content": ANSWER_PROMPT.format(passages=passages, question=question)},
    ]


def cited(answer: str, hits: list[Hit]) -> list[Hit]:
    by_rank = {h.rank: h for h in hits}
    seen: list[int] = []
    for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", answer):
        for n in group.split(","):
            r = int(n)
            if r in by_rank and r not in seen:
                seen.append(r)
    return [by_rank[r] for r in seen]


def llm_answer_text(cfg: RunConfig, question: str, hits: list[Hit]) -> str:
    """One chat call through the generation engineer's resilient client (retries, key handling)."""
    from ragtune.engine.generate.llm_client import LlmClient, resolve_api_key

    llm = cfg.generation.llm
    messages = build_answer_messages(question, hits)

    async def run() -> str:
        client = LlmClient(llm, api_key=resolve_api_key(llm), model=llm.answer_model or llm.model)
        result = await client.call(messages, parse=str, raw_text=True, name="answer")
        if client.fatal is not None:
            raise client.fatal
        if not result.ok:
            raise OfflineError(
                f"the LLM did not answer ({result.reason}): {client.redact(result.error)[:200]}",
                hint="check generation.llm.model, api_base and the key variable",
            )
        return str(result.value).strip()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(run())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def ask(
    ws: Workspace,
    question: str,
    *,
    top_k: int = 5,
    dim: int | None = None,
    rerank: bool = True,
    compare: bool = False,
    llm_answer: bool = False,
    device: str | None = None,
) -> AskResult:
    """Ranked chunks for ``question`` from the workspace's fine-tuned models (reranked and fused
    with the retriever as the reranker stage chose); ``compare`` adds the base models' ranking."""
    notes: list[str] = []
    searcher = get_searcher(ws, "tuned", device=device)
    if rerank and searcher.reranker is None and not (ws.reranker_dir / "config.json").exists():
        notes.append("no trained reranker in this workspace: retriever order only")
    hits = searcher.search(question, top_k, dim=dim, rerank=rerank)
    notes.extend(searcher.notes)
    reranked = rerank and searcher.reranker is not None and searcher.fusion_weight > 0
    result = AskResult(
        question=question,
        hits=hits,
        dim=dim,
        reranked=reranked,
        fusion_weight=searcher.fusion_weight if reranked else None,
        models={"embedder": searcher.embedder_name, "reranker": searcher.reranker_name or ""},
        notes=notes,
        retriever=searcher.describe(),
        fine_tuned=searcher.fine_tuned,
    )
    if compare:
        try:
            base = get_searcher(ws, "base", device=device)
        except OfflineError as exc:
            notes.append(f"base models unavailable: {exc.message}")
        else:
            notes.extend(base.notes)
            base_dim = dim if dim is None or dim <= base.full_dim else None
            result.base_hits = base.search(question, top_k, dim=base_dim, rerank=rerank)
            result.base_models = {
                "embedder": base.embedder_name,
                "reranker": base.reranker_name or "",
            }
    if llm_answer:
        cfg = workspace_config(ws)
        if not cfg.generation.llm.model:
            notes.append("no LLM configured (generation.llm.model): ranked passages only")
        else:
            try:
                result.answer = llm_answer_text(cfg, question, hits)
            except RagtuneError as exc:
                notes.append(f"no answer: {exc.message}")
            else:
                result.citations = cited(result.answer, hits)
    return result


def _hits_table(title: str, hits: list[Hit]) -> Any:
    """Score, source and passage; the retriever and reranker scores apart only when a
    reranker took part (otherwise the score is the retriever's)."""
    from rich.table import Table

    reranked = any(h.rerank_score is not None for h in hits)
    hybrid = any(h.fused_score is not None for h in hits)
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    if reranked:
        table.add_column("retriever", justify="right", no_wrap=True)
        table.add_column("rerank", justify="right", no_wrap=True)
    if hybrid:
        table.add_column("from", no_wrap=True)
    table.add_column("source", overflow="fold", ratio=1)
    table.add_column("passage", overflow="fold", ratio=3)
    for h in hits:
        text = " ".join(h.text.split())
        text = text if len(text) <= 300 else text[:297] + "..."
        scores = [f"{h.score:.3f}"]
        if reranked:
            rerank = "" if h.rerank_score is None else f"{h.rerank_score:.2f}"
            scores += [f"{h.retriever_score:.3f}", rerank]
        if hybrid:
            scores.append(provenance(h))
        table.add_row(str(h.rank), *scores, h.label, text)
    return table


def provenance(hit: Hit) -> str:
    """Where a hybrid hit came from: its rank in each list ("-" = not in it) and fused score."""

    def rank(r: int | None) -> str:
        return "-" if r is None else f"#{r}"

    fused = "" if hit.fused_score is None else f"\nfused {hit.fused_score:+.2f}"
    return f"dense {rank(hit.dense_rank)}\nBM25 {rank(hit.bm25_rank)}{fused}"


def render_result(result: AskResult) -> Any:
    """A rich renderable for the CLI: ranked passages, the base side, the answer, the notes."""
    from rich.console import Group
    from rich.panel import Panel

    how = "retriever" if result.retriever in ("", "dense retriever") else result.retriever
    if result.reranked:
        how = f"reranked (w={result.fusion_weight:g} reranker + {how})"
    dim = f", dim {result.dim}" if result.dim else ""
    side = "fine-tuned" if result.fine_tuned else "base model (no fine-tuned model yet)"
    parts: list[Any] = [_hits_table(f"{side}: {how}{dim}", result.hits)]
    if result.base_hits is not None:
        base = "base reranker" if result.base_models.get("reranker") else "base retriever"
        parts.append(_hits_table(f"base: {base}", result.base_hits))
    if result.answer is not None:
        sources = "\n".join(f"[{h.rank}] {h.label}" for h in result.citations)
        body = result.answer + (f"\n\nSources:\n{sources}" if sources else "")
        parts.append(Panel(body, title="answer"))
    parts.extend(f"[dim]note: {n}[/dim]" for n in result.notes)
    return Group(*parts)
