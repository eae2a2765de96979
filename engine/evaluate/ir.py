"""One-pass Matryoshka retrieval evaluation, base-vs-tuned comparison tables, and a trainer evaluator.

Importing this module is cheap (no torch): front ends use ``compare``, ``render_markdown`` and
``metrics_by_dim``; torch and sentence-transformers load only when a model is evaluated or when
``MatryoshkaIREvaluator`` is first used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.core.errors import ConfigError, InputError
from ragtune.engine.core.events import Emitter, EvalRow
from ragtune.engine.core.payloads import EncodeProgress
from ragtune.engine.evaluate.beir import IRData
from ragtune.engine.evaluate.keys import metric_key, parse_metric_key

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

DEFAULT_K_VALUES = (1, 3, 5, 10, 100)
# sentence-transformers' InformationRetrievalEvaluator defaults, so keys and numbers line up.
DEFAULT_MRR_AT_K = (10,)
DEFAULT_NDCG_AT_K = (10,)
DEFAULT_MAP_AT_K = (100,)
COMPARE_METRICS = (
    "ndcg@10",
    "mrr@10",
    "map@100",
    "accuracy@1",
    "accuracy@3",
    "accuracy@5",
    "accuracy@10",
    "precision@10",
    "recall@10",
)
# Texts handed to one encode call: a multiple of the batch size keeps sentence-transformers'
# length-sorted batches intact while still giving the front end progress between calls.
_BATCHES_PER_PROGRESS = 16


def primary_dim(dims: Sequence[int]) -> int:
    """128 when evaluated (the usual Matryoshka headline size), else the smallest size."""
    return 128 if 128 in dims else min(dims)


def primary_metric_key(
    dims: Sequence[int], prefix: str = "", ndcg_at_k: Sequence[int] = DEFAULT_NDCG_AT_K
) -> str:
    return metric_key(primary_dim(dims), f"ndcg@{max(ndcg_at_k)}", prefix)


def ir_metrics(
    hits: np.ndarray,
    n_relevant: np.ndarray,
    *,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    mrr_at_k: Sequence[int] = DEFAULT_MRR_AT_K,
    ndcg_at_k: Sequence[int] = DEFAULT_NDCG_AT_K,
    map_at_k: Sequence[int] = DEFAULT_MAP_AT_K,
) -> dict[str, float]:
    """IR metrics from a ranked hit matrix, defined exactly as sentence-transformers defines them.

    ``hits[q, r]`` says whether the result at rank ``r`` is relevant to query ``q``;
    ``n_relevant[q]`` is the size of the query's judged set. Precision divides by k even when
    fewer results exist, MAP@k by min(k, relevant), and nDCG uses binary gains with the ideal
    ranking of all relevant documents — the choices ST makes, so numbers compare across tools.
    """
    hits = hits.astype(np.float64)
    n_relevant = n_relevant.astype(np.float64)
    out: dict[str, float] = {}
    for k in k_values:
        out[f"accuracy@{k}"] = float(np.mean(hits[:, :k].any(axis=1)))
    for k in k_values:
        out[f"precision@{k}"] = float(np.mean(hits[:, :k].sum(axis=1) / k))
    for k in k_values:
        out[f"recall@{k}"] = float(np.mean(hits[:, :k].sum(axis=1) / n_relevant))
    for k in ndcg_at_k:
        out[f"ndcg@{k}"] = float(np.mean(ndcg_per_query(hits, n_relevant, k)))
    for k in mrr_at_k:
        top = hits[:, :k]
        first = top.argmax(axis=1)
        reciprocal = np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)
        out[f"mrr@{k}"] = float(np.mean(reciprocal))
    for k in map_at_k:
        top = hits[:, :k]
        ranks = np.arange(1, top.shape[1] + 1)
        precision_at_hit = np.cumsum(top, axis=1) / ranks * top
        out[f"map@{k}"] = float(np.mean(precision_at_hit.sum(axis=1) / np.minimum(k, n_relevant)))
    return out


def ndcg_per_query(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """nDCG@k of each query (binary gains, ideal ranking of all its relevant documents)."""
    hits = hits.astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits[:, :k] * discounts[: min(k, hits.shape[1])]).sum(axis=1)
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    return dcg / ideal[np.minimum(n_relevant, k).astype(int) - 1]


def _embedding_dim(model: SentenceTransformer) -> int | None:
    getter = getattr(model, "get_embedding_dimension", None)  # renamed in sentence-transformers 5.4
    return getter() if getter else model.get_sentence_embedding_dimension()


def _encode(
    model: SentenceTransformer,
    texts: list[str],
    *,
    kind: str,
    prompt: str | None,
    batch_size: int,
    events: Emitter | None,
    done: int,
    total: int,
    label: str,
) -> torch.Tensor:
    """Full-size float32 embeddings; ``encode_query``/``encode_document`` so model prompts apply."""
    import torch

    encode = getattr(model, f"encode_{kind}", None) or model.encode
    # Same length ordering as ST's encode, so slicing into calls keeps its batches.
    order = np.argsort([-len(t) for t in texts])
    step = batch_size * _BATCHES_PER_PROGRESS
    parts: list[torch.Tensor] = []
    for start in range(0, len(texts), step):
        chunk = [texts[i] for i in order[start : start + step]]
        emb = encode(
            chunk,
            prompt=prompt,
            batch_size=batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        parts.append(emb.float())
        if events is not None:
            events.progress(
                done + start + len(chunk),
                total,
                unit="texts",
                extra=EncodeProgress(model=label, part=kind),
            )
    if not parts:
        return torch.empty(0, _embedding_dim(model) or 0)
    stacked = torch.cat(parts)
    result = torch.empty_like(stacked)
    result[torch.from_numpy(order).to(stacked.device)] = stacked
    return result


def encode_documents(
    model: SentenceTransformer, texts: list[str], *, prompt: str | None, batch_size: int
) -> torch.Tensor:
    """Passages as ``encode_suite`` encodes a corpus (``encode_document``, same batches), for a
    stage that encodes a suite's corpus before evaluate does and saves it for evaluate."""
    return _encode(
        model,
        texts,
        kind="document",
        prompt=prompt,
        batch_size=batch_size,
        events=None,
        done=0,
        total=len(texts),
        label="",
    )


def _check_dims(dims: Sequence[int], full_dim: int) -> list[int]:
    if not dims:
        raise ConfigError("evaluation dims", list(dims), "at least one embedding size")
    bad = [d for d in dims if not 0 < int(d) <= full_dim]
    if bad:
        raise ConfigError(
            "embedder.matryoshka_dims", list(dims), f"sizes between 1 and the model's {full_dim}"
        )
    return [int(d) for d in dims]


def evaluate_retrieval(
    model: SentenceTransformer,
    data: IRData,
    dims: Sequence[int],
    *,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    mrr_at_k: Sequence[int] = DEFAULT_MRR_AT_K,
    ndcg_at_k: Sequence[int] = DEFAULT_NDCG_AT_K,
    map_at_k: Sequence[int] = DEFAULT_MAP_AT_K,
    batch_size: int = 64,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    prefix: str = "",
    events: Emitter | None = None,
    label: str = "model",
    per_query: dict[str, np.ndarray] | None = None,
    rankings: dict[int, list[list[tuple[str, float]]]] | None = None,
    depth: int = 0,
    embeddings: SuiteEmbeddings | None = None,
) -> dict[str, float]:
    """IR metrics for every Matryoshka size from a single encode of corpus and queries.

    ``embeddings`` (from ``encode_suite``) skips the encode: one run scores a model on several
    suites, and the base + rotation system, from the corpus encoded once per model.

    ``per_query``, when given, receives each size's per-query nDCG@10 (same key as its mean,
    queries in a fixed order), for paired comparisons of two models on the same queries.
    ``rankings``, when given, receives each size's top ``depth`` ``(doc id, cosine)`` per
    judged query (order of ``judged_queries``), for fusion with BM25 without encoding again.

    Per-size evaluators re-encode everything once per size; here each size slices and
    renormalises the full embeddings, which is what ``truncate_dim`` plus cosine does, so the
    numbers equal ST's ``InformationRetrievalEvaluator(truncate_dim=d, name=f"dim_{d}")``
    (keys ``{prefix}dim_{d}_cosine_{metric}``). They can differ only where a relevant and a
    non-relevant document score exactly the same, as the order of exact ties is arbitrary in both.
    """
    from ragtune.engine.core.search import topk_search, truncate_normalize

    full_dim = _embedding_dim(model)
    dims = _check_dims(dims, full_dim or max(dims))
    if embeddings is None:
        embeddings = encode_suite(
            model,
            data,
            batch_size=batch_size,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            events=events,
            label=label,
        )
    query_ids, corpus_ids = embeddings.query_ids, embeddings.corpus_ids
    query_emb, corpus_emb = embeddings.queries, embeddings.corpus

    position = {cid: i for i, cid in enumerate(corpus_ids)}
    relevant_rows = [
        {position[c] for c in data.relevant[qid] if c in position} for qid in query_ids
    ]
    n_relevant = np.array([len(data.relevant[qid]) for qid in query_ids])
    max_k = max([*k_values, *mrr_at_k, *ndcg_at_k, *map_at_k])

    results: dict[str, float] = {}
    search_k = max(max_k, depth if rankings is not None else 0)
    for dim in dims:
        scores, indices = topk_search(
            truncate_normalize(query_emb, dim), truncate_normalize(corpus_emb, dim), search_k
        )
        order = np.lexsort((indices, -scores), axis=1)
        indices = np.take_along_axis(indices, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        if rankings is not None:
            rankings[dim] = [
                [(corpus_ids[i], float(v)) for i, v in zip(row_i, row_s, strict=True)]
                for row_i, row_s in zip(indices.tolist(), scores.tolist(), strict=True)
            ]
        indices = indices[:, :max_k]
        hits = np.array(
            [
                [i in rows for i in ranked]
                for rows, ranked in zip(relevant_rows, indices.tolist(), strict=True)
            ],
            dtype=bool,
        ).reshape(indices.shape)
        metrics = ir_metrics(
            hits,
            n_relevant,
            k_values=k_values,
            mrr_at_k=mrr_at_k,
            ndcg_at_k=ndcg_at_k,
            map_at_k=map_at_k,
        )
        results.update({metric_key(dim, name, prefix): value for name, value in metrics.items()})
        if per_query is not None:
            per_query[metric_key(dim, "ndcg@10", prefix)] = ndcg_per_query(hits, n_relevant, 10)
        if events is not None:
            events.emit(EvalRow(model=label, dim=dim, metrics=metrics))
    return results


@dataclass(frozen=True)
class SuiteEmbeddings:
    """One model's full-size embeddings of a suite: judged queries in ``judged_queries`` order,
    the corpus in id order (ties rank by id, as in sentence-transformers' evaluator)."""

    query_ids: list[str]
    corpus_ids: list[str]
    queries: torch.Tensor
    corpus: torch.Tensor

    def mapped(self, matrix: torch.Tensor) -> SuiteEmbeddings:
        """The same texts through a linear layer appended to the model (``x @ matrix.T``), as
        the corpus rotation is: the base + rotation system without encoding again."""
        m = matrix.to(self.corpus.device, self.corpus.dtype)
        return SuiteEmbeddings(
            self.query_ids, self.corpus_ids, self.queries @ m.T, self.corpus @ m.T
        )


def encode_suite(
    model: SentenceTransformer,
    data: IRData,
    *,
    batch_size: int = 64,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    events: Emitter | None = None,
    label: str = "model",
    corpus: torch.Tensor | None = None,
) -> SuiteEmbeddings:
    """Encode a suite's judged queries and its corpus once; ``corpus`` reuses embeddings of the
    same corpus (same ids, id order) that another suite already made with this model."""
    query_ids = judged_queries(data)
    corpus_ids = sorted(data.corpus)
    if not query_ids or not corpus_ids:
        raise InputError(
            "nothing to evaluate: no judged query or an empty corpus",
            hint="each query needs at least one relevant document in the corpus",
        )
    queries = [data.queries[qid] for qid in query_ids]
    total = len(queries) + (0 if corpus is not None else len(corpus_ids))
    common = {"batch_size": batch_size, "events": events, "total": total, "label": label}
    query_emb = _encode(model, queries, kind="query", prompt=query_prompt, done=0, **common)
    if corpus is None:
        documents = [data.corpus[cid] for cid in corpus_ids]
        corpus = _encode(
            model, documents, kind="document", prompt=document_prompt, done=len(queries), **common
        )
    return SuiteEmbeddings(query_ids, corpus_ids, query_emb, corpus)


def judged_queries(data: IRData) -> list[str]:
    """The queries with at least one judged passage, in the fixed order per-query scores use."""
    return [qid for qid in data.queries if data.relevant.get(qid)]


def ranking_metrics(
    ranked: Sequence[Sequence[str]],
    data: IRData,
    *,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    mrr_at_k: Sequence[int] = DEFAULT_MRR_AT_K,
    ndcg_at_k: Sequence[int] = DEFAULT_NDCG_AT_K,
    map_at_k: Sequence[int] = DEFAULT_MAP_AT_K,
) -> tuple[dict[str, float], np.ndarray]:
    """IR metrics and per-query nDCG@10 of rankings given as doc ids, one list per judged
    query (``judged_queries`` order): how BM25 and fused rankings are scored, with the same
    definitions as the dense model's."""
    query_ids = judged_queries(data)
    if len(ranked) != len(query_ids):
        raise ValueError(f"{len(ranked)} rankings for {len(query_ids)} judged queries")
    max_k = max([*k_values, *mrr_at_k, *ndcg_at_k, *map_at_k])
    hits = np.zeros((len(query_ids), max_k), dtype=bool)
    for row, (qid, docs) in enumerate(zip(query_ids, ranked, strict=True)):
        relevant = data.relevant[qid]
        for col, doc in enumerate(list(docs)[:max_k]):
            hits[row, col] = doc in relevant
    n_relevant = np.array([len(data.relevant[qid]) for qid in query_ids])
    metrics = ir_metrics(
        hits,
        n_relevant,
        k_values=k_values,
        mrr_at_k=mrr_at_k,
        ndcg_at_k=ndcg_at_k,
        map_at_k=map_at_k,
    )
    return metrics, ndcg_per_query(hits, n_relevant, 10)


def metrics_by_dim(metrics: dict[str, float], prefix: str = "") -> dict[int, dict[str, float]]:
    """``{384: {"ndcg@10": ...}}`` from the flat keys; other keys (e.g. losses) are ignored."""
    out: dict[int, dict[str, float]] = {}
    for key, value in metrics.items():
        parsed = parse_metric_key(key, prefix)
        if parsed:
            out.setdefault(parsed[0], {})[parsed[1]] = float(value)
    return dict(sorted(out.items(), reverse=True))


def compare(
    base: dict[str, float],
    tuned: dict[str, float],
    dims: Sequence[int],
    metrics: Sequence[str] = COMPARE_METRICS,
    *,
    prefix: str = "",
    rotated: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Rows of base vs tuned per size and metric; metrics missing from either side are left out.

    With ``rotated`` (the base model plus the corpus rotation, no training) each row also says
    what training added beyond the rotation: at truncated sizes most of the raw gain can be
    the rotation's."""
    rows: list[dict[str, Any]] = []
    for dim in dims:
        for metric in metrics:
            key = metric_key(dim, metric, prefix)
            if key not in base or key not in tuned:
                continue
            before, after = float(base[key]), float(tuned[key])
            rows.append(
                {
                    "dim": dim,
                    "metric": metric,
                    "base": before,
                    "tuned": after,
                    "abs_change": after - before,
                    "rel_change": (after - before) / before if before else None,
                }
            )
            if rotated is not None and key in rotated:
                mid = float(rotated[key])
                rows[-1]["base_rotated"] = mid
                rows[-1]["rel_change_vs_rotated"] = (after - mid) / mid if mid else None
    return rows


def format_change(row: dict[str, Any]) -> str:
    rel = row["rel_change"]
    if rel is None:
        return "n/a" if row["abs_change"] == 0 else f"{row['abs_change']:+.4f}"
    return f"{rel * 100:+.1f}%"


def format_change_vs_rotated(row: dict[str, Any]) -> str:
    rel = row.get("rel_change_vs_rotated")
    return "n/a" if rel is None else f"{rel * 100:+.1f}%"


def render_markdown(rows: list[dict[str, Any]]) -> str:
    """The report table: one line per size and metric, relative changes as signed percentages,
    against the base and (when measured) against the base with the rotation alone."""
    rotated = any("base_rotated" in r for r in rows)
    if not rotated:
        lines = [
            "| dim | metric | base | fine-tuned | vs base |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        for row in rows:
            lines.append(
                f"| {row['dim']} | {row['metric']} | {row['base']:.4f} | {row['tuned']:.4f} "
                f"| {format_change(row)} |"
            )
        return "\n".join(lines) + "\n"
    lines = [
        "| dim | metric | base | base + rotation | fine-tuned | vs base | vs base + rotation |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        mid = row.get("base_rotated")
        lines.append(
            f"| {row['dim']} | {row['metric']} | {row['base']:.4f} | "
            f"{'' if mid is None else f'{mid:.4f}'} | {row['tuned']:.4f} | {format_change(row)} | "
            f"{format_change_vs_rotated(row)} |"
        )
    return "\n".join(lines) + "\n"


def training_gains(
    tuned: dict[str, np.ndarray], baseline: dict[str, np.ndarray], dims: Sequence[int]
) -> dict[str, dict[str, float]]:
    """Per size, the mean per-query nDCG@10 change with its paired-bootstrap interval:
    whether the change training made is more than the queries' noise."""
    from ragtune.engine.evaluate.stats import paired_gain

    out: dict[str, dict[str, float]] = {}
    for dim in dims:
        key = metric_key(dim, "ndcg@10")
        if key in tuned and key in baseline:
            gain = paired_gain(tuned[key], baseline[key])
            out[str(dim)] = {"mean": gain.mean, "low": gain.low, "high": gain.high}
    return out


def gain_verdict(gain: dict[str, float]) -> str:
    if gain["low"] > 0:
        return "gain"
    if gain["high"] < 0:
        return "loss"
    return "within noise"


def render_gains_markdown(gains: dict[str, dict[str, float]], queries: int, against: str) -> str:
    """The headline a user can act on: per size, the nDCG@10 change and whether the queries
    tell it from zero."""
    from ragtune.engine.evaluate.stats import CONFIDENCE

    lines = [
        f"nDCG@10 change, fine-tuned − {against}, with its {CONFIDENCE:.0%} paired-bootstrap "
        f"interval over {queries} queries:",
        "",
        "| dim | change | interval | reads as |",
        "| ---: | ---: | ---: | --- |",
    ]
    for dim, g in sorted(gains.items(), key=lambda item: -int(item[0])):
        lines.append(
            f"| {dim} | {g['mean']:+.4f} | {g['low']:+.4f} to {g['high']:+.4f} | "
            f"{gain_verdict(g)} |"
        )
    return "\n".join(lines) + "\n"


def _build_evaluator_class() -> type:
    try:
        from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator
    except ImportError:  # sentence-transformers < 5.4
        from sentence_transformers.evaluation import SentenceEvaluator

    class MatryoshkaIREvaluator(SentenceEvaluator):
        """All Matryoshka sizes from one encode per evaluation, for ``SentenceTransformerTrainer``.

        A ``SequentialEvaluator`` of per-size IR evaluators encodes the corpus once per size;
        this returns the same flat keys (the trainer adds ``eval_``) at the cost of one encode.
        """

        def __init__(
            self,
            data: IRData,
            dims: Sequence[int],
            *,
            name: str = "",
            k_values: Sequence[int] = DEFAULT_K_VALUES,
            mrr_at_k: Sequence[int] = DEFAULT_MRR_AT_K,
            ndcg_at_k: Sequence[int] = DEFAULT_NDCG_AT_K,
            map_at_k: Sequence[int] = DEFAULT_MAP_AT_K,
            batch_size: int = 64,
            query_prompt: str | None = None,
            document_prompt: str | None = None,
            events: Emitter | None = None,
            label: str = "model",
        ) -> None:
            super().__init__()
            self.data = data
            self.dims = [int(d) for d in dims]
            self.name = name
            self.prefix = f"{name}_" if name else ""
            self.k_values = list(k_values)
            self.mrr_at_k = list(mrr_at_k)
            self.ndcg_at_k = list(ndcg_at_k)
            self.map_at_k = list(map_at_k)
            self.batch_size = batch_size
            self.query_prompt = query_prompt
            self.document_prompt = document_prompt
            self.events = events
            self.label = label
            self.primary_metric = primary_metric_key(self.dims, self.prefix, self.ndcg_at_k)

        def __call__(
            self,
            model: SentenceTransformer,
            output_path: str | None = None,
            epoch: int = -1,
            steps: int = -1,
            *args: Any,
            **kwargs: Any,
        ) -> dict[str, float]:
            metrics = evaluate_retrieval(
                model,
                self.data,
                self.dims,
                k_values=self.k_values,
                mrr_at_k=self.mrr_at_k,
                ndcg_at_k=self.ndcg_at_k,
                map_at_k=self.map_at_k,
                batch_size=self.batch_size,
                query_prompt=self.query_prompt,
                document_prompt=self.document_prompt,
                prefix=self.prefix,
                events=self.events,
                label=self.label,
            )
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

        def get_config_dict(self) -> dict[str, Any]:
            config: dict[str, Any] = {"dims": self.dims}
            if self.query_prompt is not None:
                config["query_prompt"] = self.query_prompt
            if self.document_prompt is not None:
                config["document_prompt"] = self.document_prompt
            return config

    MatryoshkaIREvaluator.__module__ = __name__
    MatryoshkaIREvaluator.__qualname__ = "MatryoshkaIREvaluator"
    return MatryoshkaIREvaluator


def __getattr__(name: str) -> Any:
    # Built on first use so importing this module does not pull in torch (PEP 562).
    if name == "MatryoshkaIREvaluator":
        cls = _build_evaluator_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
