"""Does the reranker reorder the retriever's top-k for the better? Metrics, fusion and the table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.core.search import topk_search, truncate_normalize
from ragtune.engine.evaluate.stats import CONFIDENCE, Interval, bootstrap_mean, paired_gain
from ragtune.engine.reranker.selection import (
    MIN_SPLIT_QUERIES,
    decide,
    per_query_ndcg,
    three_splits,
)

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from ragtune.engine.evaluate.beir import IRData

METRICS = ("ndcg@10", "mrr@10", "map@100")
WEIGHT_GRID = tuple(round(i / 10, 1) for i in range(11))
# Smallest ndcg@10 gain on the weight split for a weight above 0 to be tried on the last split.
MIN_GAIN = 0.005


def ranking_metrics(
    ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]]
) -> dict[str, float]:
    """ndcg@10, mrr@10, map@100 with binary relevance, as sentence-transformers' IR evaluator
    defines them (ideal DCG over min(#relevant, k); AP divided by min(#relevant, k))."""
    ndcg, mrr, ap = [], [], []
    for ids, rel in zip(ranked, relevant, strict=True):
        if not rel:
            continue
        dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ids[:10]) if d in rel)
        idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg.append(dcg / idcg)
        mrr.append(next((1.0 / (i + 1) for i, d in enumerate(ids[:10]) if d in rel), 0.0))
        hits, total = 0, 0.0
        for i, d in enumerate(ids[:100]):
            if d in rel:
                hits += 1
                total += hits / (i + 1)
        ap.append(total / min(len(rel), 100))
    if not ndcg:
        return {m: 0.0 for m in METRICS}
    return {
        "ndcg@10": float(np.mean(ndcg)),
        "mrr@10": float(np.mean(mrr)),
        "map@100": float(np.mean(ap)),
    }


@dataclass
class Candidates:
    """The retriever's top-k per query (best first) with cosine scores, and the judged ids."""

    queries: list[str]
    ids: list[list[str]]
    scores: list[np.ndarray]
    relevant: list[set[str]]
    positive_scores: list[dict[str, float]] = field(default_factory=list)

    def including_positives(self) -> Candidates:
        """Missing positives appended after the top-k (by their own cosine): the reranker's
        ceiling when the retriever's recall is taken out of the picture."""
        ids, scores = [], []
        for cand, sc, pos in zip(self.ids, self.scores, self.positive_scores, strict=True):
            missing = sorted((d for d in pos if d not in set(cand)), key=lambda d: -pos[d])
            ids.append(cand + missing)
            scores.append(np.concatenate([sc, np.array([pos[d] for d in missing], np.float32)]))
        return Candidates(self.queries, ids, scores, self.relevant, self.positive_scores)


def encode_corpus(
    embedder: SentenceTransformer, texts: Sequence[str], batch_size: int = 64
) -> np.ndarray:
    return embedder.encode_document(
        list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True
    ).astype(np.float32)


def encode_queries(
    embedder: SentenceTransformer, texts: Sequence[str], batch_size: int = 64
) -> np.ndarray:
    return embedder.encode_query(
        list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True
    ).astype(np.float32)


def retrieve_candidates(
    embedder: SentenceTransformer,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    relevant: Mapping[str, set[str]],
    top_k: int,
    *,
    dim: int | None = None,
    batch_size: int = 64,
    corpus_emb: np.ndarray | None = None,
) -> Candidates:
    """Encode once, cosine top-k; ``dim`` truncates to a Matryoshka size first."""
    doc_ids = list(corpus)
    if corpus_emb is None:
        corpus_emb = encode_corpus(embedder, [corpus[d] for d in doc_ids], batch_size)
    qids = [q for q in queries if relevant.get(q)]
    q_emb = encode_queries(embedder, [queries[q] for q in qids], batch_size)
    if dim:
        corpus_emb = truncate_normalize(corpus_emb, dim)
        q_emb = truncate_normalize(q_emb, dim)
    scores, idx = topk_search(q_emb, corpus_emb, top_k)
    position = {d: i for i, d in enumerate(doc_ids)}
    pos_scores = []
    for qi, q in enumerate(qids):
        rel = [d for d in relevant[q] if d in position]
        sims = corpus_emb[[position[d] for d in rel]] @ q_emb[qi] if rel else np.zeros(0)
        pos_scores.append({d: float(s) for d, s in zip(rel, sims, strict=True)})
    return Candidates(
        queries=[queries[q] for q in qids],
        ids=[[doc_ids[j] for j in row] for row in idx],
        scores=[row.astype(np.float32) for row in scores],
        relevant=[set(relevant[q]) for q in qids],
        positive_scores=pos_scores,
    )


def rerank_scores(
    model: CrossEncoder,
    cands: Candidates,
    corpus: Mapping[str, str],
    batch_size: int = 64,
) -> list[np.ndarray]:
    """Raw logits (no sigmoid) for every candidate, in one batched predict."""
    import torch

    pairs = [(q, corpus[d]) for q, ids in zip(cands.queries, cands.ids, strict=True) for d in ids]
    if not pairs:
        return [np.zeros(0, np.float32) for _ in cands.ids]
    flat = model.predict(
        pairs,
        batch_size=batch_size,
        activation_fn=torch.nn.Identity(),
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    flat = np.asarray(flat, dtype=np.float32).reshape(-1)
    out, start = [], 0
    for ids in cands.ids:
        out.append(flat[start : start + len(ids)])
        start += len(ids)
    return out


def _minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def fuse(retriever: np.ndarray, reranker: np.ndarray, weight: float) -> np.ndarray:
    """w * reranker + (1 - w) * retriever, each min-max scaled within the query's candidates,
    so logits and cosines share a scale; w = 0 is the retriever's order exactly."""
    if weight <= 0:
        return np.asarray(retriever, np.float32)
    if weight >= 1:
        return np.asarray(reranker, np.float32)
    return weight * _minmax(np.asarray(reranker)) + (1 - weight) * _minmax(np.asarray(retriever))


def order(ids: Sequence[str], scores: np.ndarray) -> list[str]:
    """Best first; ties keep the retriever's order (a stable sort over it)."""
    ranking = np.argsort(-np.asarray(scores), kind="stable")
    return [ids[i] for i in ranking]


def metrics_for(cands: Candidates, scores: Sequence[np.ndarray]) -> dict[str, float]:
    ranked = [order(ids, s) for ids, s in zip(cands.ids, scores, strict=True)]
    return ranking_metrics(ranked, cands.relevant)


def fused_metrics(
    cands: Candidates, rerank: Sequence[np.ndarray], weight: float
) -> dict[str, float]:
    return metrics_for(
        cands, [fuse(r, s, weight) for r, s in zip(cands.scores, rerank, strict=True)]
    )


def choose_weight(
    cands: Candidates,
    rerank: Sequence[np.ndarray],
    grid: Sequence[float] = WEIGHT_GRID,
    min_gain: float = MIN_GAIN,
) -> tuple[float, dict[float, float]]:
    """The fusion weight with the best ndcg@10, or 0 (the retriever's order, untouched) when
    the best beats w = 0 by less than ``min_gain``: on a few dozen queries a smaller gain is
    noise, and adopting noise is how a reranker ends up lowering ndcg on real queries."""
    curve = {w: fused_metrics(cands, rerank, w)["ndcg@10"] for w in grid}
    best = max(curve.values())
    chosen = min(w for w, v in curve.items() if v >= best - 1e-9)
    if best - curve.get(0.0, fused_metrics(cands, rerank, 0.0)["ndcg@10"]) < min_gain:
        chosen = 0.0
    return chosen, curve


def checkpoint_queries(cands: Candidates) -> Candidates:
    """The third of the held-out queries that picks the reranker's checkpoint during training
    (all of them when there are too few to split; the weight is then not chosen at all)."""
    splits = three_splits(len(cands.queries))
    return take(cands, splits[0]) if splits else cands


def take(cands: Candidates, idx: Sequence[int]) -> Candidates:
    return Candidates(
        [cands.queries[i] for i in idx],
        [cands.ids[i] for i in idx],
        [cands.scores[i] for i in idx],
        [cands.relevant[i] for i in idx],
        [cands.positive_scores[i] for i in idx] if cands.positive_scores else [],
    )


@dataclass
class RerankReport:
    """Rows of (candidate set, system) → metrics, and the verdict lines for the report."""

    rows: dict[str, dict[str, dict[str, float]]]
    weight: float
    top_k: int
    queries: int
    notes: list[str] = field(default_factory=list)
    # Retriever / reranker / fused ndcg@10 with intervals on the split no choice saw.
    unseen: dict[str, Interval] = field(default_factory=dict)
    unseen_queries: int = 0
    decision: str = ""

    def markdown(self) -> str:
        lines = [
            f"### Reranker on the held-out queries (top {self.top_k} of the retriever, "
            f"{self.queries} queries)",
            "",
            "| candidates | system | ndcg@10 | mrr@10 | map@100 | ndcg@10 vs retriever |",
            "|---|---|---|---|---|---|",
        ]
        for setting, systems in self.rows.items():
            base = systems.get("retriever", {}).get("ndcg@10", 0.0)
            for name, m in systems.items():
                change = "" if name == "retriever" else _change(m["ndcg@10"], base)
                lines.append(
                    f"| {setting} | {name} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | "
                    f"{m['map@100']:.4f} | {change} |"
                )
        lines.append("")
        if self.unseen:
            lines += [
                f"On the {self.unseen_queries} held-out queries that chose nothing "
                f"(ndcg@10, {CONFIDENCE:.0%} bootstrap interval):",
                "",
                "| system | ndcg@10 |",
                "|---|---|",
                *(f"| {name} | {iv} |" for name, iv in self.unseen.items()),
                "",
            ]
        if self.decision:
            lines.append(f"**Decision:** {self.decision}")
            lines.append("")
        lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines).rstrip() + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "queries": self.queries,
            "fusion_weight": self.weight,
            "rows": self.rows,
            "notes": self.notes,
            "decision": self.decision,
            "unseen_queries": self.unseen_queries,
            "unseen_ndcg@10": {
                k: {"mean": v.mean, "low": v.low, "high": v.high} for k, v in self.unseen.items()
            },
        }


def _change(value: float, base: float) -> str:
    diff = value - base
    rel = f" ({diff / base:+.1%})" if base > 0 else ""
    return f"{diff:+.4f}{rel}"


def _scores_both(
    model: CrossEncoder,
    top: Candidates,
    included: Candidates,
    corpus: Mapping[str, str],
    batch_size: int,
) -> dict[str, list[np.ndarray]]:
    """Score the with-positives lists once; the top-k lists are their prefixes."""
    full = rerank_scores(model, included, corpus, batch_size)
    prefix = [s[: len(ids)] for s, ids in zip(full, top.ids, strict=True)]
    return {"retrieved top-k": prefix, "positives included": full}


def _choose_and_decide(
    top: Candidates, scores: list[np.ndarray], weight: float | None
) -> tuple[float, str, dict[str, Interval], int]:
    """(weight search uses, the decision in words, unseen-split rows, unseen queries)."""
    if weight is not None:
        return weight, f"fusion weight {weight:.1f} set in reranker.fusion_weight", {}, 0
    splits = three_splits(len(top.queries))
    if splits is None:
        return (
            0.0,
            f"{len(top.queries)} held-out queries are too few to show, on queries no choice "
            f"saw, that the reranker helps (needs {3 * MIN_SPLIT_QUERIES}): search keeps the "
            "retriever's order; set reranker.fusion_weight to force a weight",
            {},
            0,
        )
    _, weight_idx, decide_idx = splits
    candidate, _ = choose_weight(take(top, weight_idx), [scores[i] for i in weight_idx])
    unseen = take(top, decide_idx)
    unseen_scores = [scores[i] for i in decide_idx]
    retr = per_query_ndcg(
        [order(i, s) for i, s in zip(unseen.ids, unseen.scores, strict=True)], unseen.relevant
    )
    alone = per_query_ndcg(
        [order(i, s) for i, s in zip(unseen.ids, unseen_scores, strict=True)], unseen.relevant
    )
    fused_scores = [
        fuse(r, s, candidate) for r, s in zip(unseen.scores, unseen_scores, strict=True)
    ]
    fused = per_query_ndcg(
        [order(i, s) for i, s in zip(unseen.ids, fused_scores, strict=True)], unseen.relevant
    )
    result = decide(candidate, fused, retr)
    rows = {
        "retriever": bootstrap_mean(retr),
        "fine-tuned reranker": bootstrap_mean(alone),
        f"fused (w={candidate:.1f}, chosen on the weight split)": bootstrap_mean(fused),
    }
    return result.weight, result.reason, rows, len(decide_idx)


def evaluate_rerankers(
    cands: Candidates,
    corpus: Mapping[str, str],
    tuned: CrossEncoder,
    base: CrossEncoder | None = None,
    *,
    weight: float | None = None,
    batch_size: int = 64,
    base_label: str = "base reranker",
) -> RerankReport:
    """Retriever alone vs base reranker vs fine-tuned reranker (alone and fused with the
    retriever), on the retrieved top-k and with the positives always included.

    With ``weight`` None the weight is chosen on one third of the queries and kept only if it
    beats the retriever on another third that no choice saw (``selection.decide``); the first
    third chose the checkpoint during training.
    """
    settings = {"retrieved top-k": cands, "positives included": cands.including_positives()}
    rows: dict[str, dict[str, dict[str, float]]] = {}
    notes: list[str] = []
    tuned_scores = _scores_both(tuned, cands, settings["positives included"], corpus, batch_size)
    base_scores = (
        _scores_both(base, cands, settings["positives included"], corpus, batch_size)
        if base is not None
        else {}
    )
    chosen, decision, unseen, unseen_n = _choose_and_decide(
        settings["retrieved top-k"], tuned_scores["retrieved top-k"], weight
    )
    for name, c in settings.items():
        systems = {"retriever": metrics_for(c, c.scores)}
        if base is not None:
            systems[base_label] = metrics_for(c, base_scores[name])
        systems["fine-tuned reranker"] = metrics_for(c, tuned_scores[name])
        systems[f"fine-tuned fused (w={chosen:.1f})"] = fused_metrics(c, tuned_scores[name], chosen)
        rows[name] = systems
    report = RerankReport(
        rows=rows,
        weight=chosen,
        top_k=max((len(i) for i in cands.ids), default=0),
        queries=len(cands.queries),
        notes=notes,
        unseen=unseen,
        unseen_queries=unseen_n,
        decision=decision,
    )
    top_rows = rows["retrieved top-k"]
    retr = top_rows["retriever"]["ndcg@10"]
    alone = top_rows["fine-tuned reranker"]["ndcg@10"]
    fused = top_rows[f"fine-tuned fused (w={chosen:.1f})"]["ndcg@10"]
    if alone <= retr:
        notes.append(
            f"the fine-tuned reranker alone does not beat the retriever alone: ndcg@10 "
            f"{alone:.4f} vs {retr:.4f} ({_change(alone, retr)})"
        )
    if chosen > 0:
        notes.append(
            f"search uses w={chosen:.1f} * reranker + {1 - chosen:.1f} * retriever: ndcg@10 "
            f"{fused:.4f} vs {retr:.4f} for the retriever alone over all held-out queries"
        )
    return report


def evaluate_reranking_on_beir(
    embedder: SentenceTransformer,
    reranker: CrossEncoder,
    data: IRData,
    top_k: int = 30,
    *,
    weight: float | None = None,
    dim: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Retriever alone vs reranked (and fused at ``weight`` when given) on a labelled collection,
    with a bootstrap interval for each system's ndcg@10 and a paired one for its gain over the
    retriever (``intervals``): 30-100 queries leave gains of a few points inside the noise."""
    cands = retrieve_candidates(
        embedder, data.queries, data.corpus, data.relevant, top_k, dim=dim, batch_size=batch_size
    )
    scores = rerank_scores(reranker, cands, data.corpus, batch_size)
    out: dict[str, Any] = {
        "top_k": top_k,
        "queries": len(cands.queries),
        "retriever": metrics_for(cands, cands.scores),
        "reranker": metrics_for(cands, scores),
    }
    systems = {"retriever": list(cands.scores), "reranker": list(scores)}
    if weight is not None:
        out["weight"] = weight
        out["fused"] = fused_metrics(cands, scores, weight)
        systems["fused"] = [fuse(r, s, weight) for r, s in zip(cands.scores, scores, strict=True)]
    per_query = {
        name: per_query_ndcg(
            [order(ids, s) for ids, s in zip(cands.ids, sys_scores, strict=True)], cands.relevant
        )
        for name, sys_scores in systems.items()
    }
    out["intervals"] = {name: asdict(bootstrap_mean(v)) for name, v in per_query.items()}
    for name in ("reranker", "fused"):
        if name in per_query:
            gain = paired_gain(per_query[name], per_query["retriever"])
            out["intervals"][f"{name}_vs_retriever"] = asdict(gain)
    out["curve"] = {str(w): fused_metrics(cands, scores, w)["ndcg@10"] for w in WEIGHT_GRID}
    return out
