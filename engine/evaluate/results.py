"""Typed reading of ``metrics.json``: base vs tuned per suite and dim, and quality per reranker system.

``metrics.json`` is shared by stages, each owning one top-level key: ``embedder``
(written by ``ragtune.engine.evaluate.stage``: one section per suite, "held-out" and
optionally "benchmark", each with flat ``dim_<d>_cosine_<metric>`` dicts for
the base and the tuned model) and ``reranker`` (written by
``ragtune.engine.reranker.train``: bookkeeping plus ``evaluation.rows``, candidate set →
system → metrics). Front ends render these dataclasses instead of guessing
at the JSON, so a mislabelled table cannot happen silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.engine.core.metrics_file import MetricsFile
from ragtune.engine.evaluate.keys import parse_metric_key
from ragtune.engine.retrieval.fusion import DEFAULT_DEPTH, DEFAULT_RRF_K, FusionSettings

SUITES = ("held-out", "benchmark")
SUITE_TITLES = {
    "held-out": "held-out queries (chunks never trained on)",
    "benchmark": "benchmark (your labelled questions)",
}
SHOWN_METRICS = ("ndcg@10", "mrr@10", "map@100", "accuracy@1", "accuracy@10", "recall@10")
RERANK_METRICS = ("ndcg@10", "mrr@10", "map@100")
# Every retriever a run measures, in the order tables list them; keys of metrics.json.
RETRIEVERS = ("bm25", "base", "base_rotated", "tuned", "hybrid_base", "hybrid_tuned")
RETRIEVER_LABELS = {
    "bm25": "BM25",
    "base": "dense base",
    "base_rotated": "dense base + rotation",
    "tuned": "dense fine-tuned",
    "hybrid_base": "hybrid base",
    "hybrid_tuned": "hybrid fine-tuned",
}


@dataclass(frozen=True)
class MetricRow:
    dim: int
    metric: str
    base: float | None
    tuned: float | None
    base_rotated: float | None = None
    """The base model after the rotation fitted on the training pairs (no fine-tuning)."""

    @property
    def change(self) -> float | None:
        """Relative change, tuned over base (None when either is missing or base is 0)."""
        if self.base is None or self.tuned is None or not self.base:
            return None
        return (self.tuned - self.base) / self.base


def split_flat(flat: dict[str, Any]) -> dict[int, dict[str, float]]:
    """``{"dim_64_cosine_ndcg@10": v}`` → ``{64: {"ndcg@10": v}}``."""
    out: dict[int, dict[str, float]] = {}
    for key, value in (flat or {}).items():
        parsed = parse_metric_key(key)
        if parsed and isinstance(value, (int, float)):
            out.setdefault(parsed[0], {})[parsed[1]] = float(value)
    return out


@dataclass(frozen=True)
class Gain:
    """What training changed in nDCG@10 at one size, against ``against`` (base + rotation
    when the rotation is on), with its 95% paired-bootstrap interval over the queries."""

    dim: int
    mean: float
    low: float
    high: float
    against: str
    queries: int

    @property
    def verdict(self) -> str:
        """gain, loss, or within noise: whether the queries tell the change from zero."""
        from ragtune.engine.evaluate.ir import gain_verdict

        return gain_verdict({"low": self.low, "high": self.high})


@dataclass(frozen=True)
class RetrieverRow:
    """One retriever's metric at each size, and its change against the dense base with the
    95% paired-bootstrap interval (none for the dense base itself)."""

    retriever: str
    values: dict[int, float]
    changes: dict[int, Gain]

    @property
    def label(self) -> str:
        return RETRIEVER_LABELS.get(self.retriever, self.retriever)


@dataclass(frozen=True)
class Recommendation:
    """Which retriever to ship on this data, measured where it can be judged."""

    retriever: str
    dim: int
    suite: str
    queries: int
    query_source: str
    """"labelled benchmark queries", "LLM-written held-out queries" or "LLM-free pseudo-queries"."""
    ndcg: float
    vs_base: Gain | None
    runner_up: str
    vs_runner_up: Gain | None
    fusion: str
    """The fusion the hybrid rows used, in words (method, weight and where it came from)."""
    reason: str
    caveats: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return RETRIEVER_LABELS.get(self.retriever, self.retriever)

    @property
    def hybrid(self) -> bool:
        return self.retriever.startswith("hybrid")

    @property
    def fine_tuned(self) -> bool:
        return self.retriever in ("tuned", "hybrid_tuned")

    @property
    def uses_bm25(self) -> bool:
        return self.retriever in ("bm25", "hybrid_base", "hybrid_tuned")

    @property
    def uses_dense(self) -> bool:
        return self.retriever != "bm25"


@dataclass
class SuiteResult:
    """One evaluation set, base vs tuned per Matryoshka dim."""

    name: str
    queries: int = 0
    corpus: int = 0
    base: dict[int, dict[str, float]] = field(default_factory=dict)
    tuned: dict[int, dict[str, float]] = field(default_factory=dict)
    base_rotated: dict[int, dict[str, float]] = field(default_factory=dict)
    gains: dict[int, Gain] = field(default_factory=dict)
    """Per size; empty for runs evaluated before ragtune measured intervals."""
    others: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    """BM25 and the hybrids (``RETRIEVERS`` keys) per size; empty before ragtune measured them."""
    changes: dict[str, dict[int, Gain]] = field(default_factory=dict)
    """Each retriever's nDCG@10 change against the dense base, per size."""

    def metrics_of(self, retriever: str) -> dict[int, dict[str, float]]:
        if retriever in ("base", "tuned", "base_rotated"):
            return getattr(self, retriever)
        return self.others.get(retriever, {})

    def retriever_rows(self, metric: str = "ndcg@10") -> list[RetrieverRow]:
        """The retrievers measured on this suite, in ``RETRIEVERS`` order."""
        out = []
        for key in RETRIEVERS:
            by_dim = self.metrics_of(key)
            values = {d: m[metric] for d, m in by_dim.items() if metric in m}
            if values:
                out.append(RetrieverRow(key, values, self.changes.get(key, {})))
        return out

    @property
    def title(self) -> str:
        return SUITE_TITLES.get(self.name, self.name)

    @property
    def dims(self) -> list[int]:
        return sorted(set(self.base) | set(self.tuned), reverse=True)

    def rows(self, metrics: tuple[str, ...] = SHOWN_METRICS) -> list[MetricRow]:
        out = []
        for dim in self.dims:
            for metric in metrics:
                b = self.base.get(dim, {}).get(metric)
                t = self.tuned.get(dim, {}).get(metric)
                r = self.base_rotated.get(dim, {}).get(metric)
                if b is not None or t is not None:
                    out.append(MetricRow(dim, metric, b, t, r))
        return out

    def primary(self, metric: str) -> list[tuple[int, float, float]]:
        """(dim, base, tuned) of one metric, for a chart."""
        return [
            (d, self.base.get(d, {}).get(metric, 0.0), self.tuned.get(d, {}).get(metric, 0.0))
            for d in self.dims
        ]


@dataclass(frozen=True)
class RerankRow:
    """One system on one candidate set, e.g. ("retrieved top-k", "fine-tuned reranker")."""

    candidates: str
    system: str
    metrics: dict[str, float]

    @property
    def kind(self) -> str:
        """retriever, reranker or fused: what a reader compares."""
        s = self.system.lower()
        if "fused" in s:
            return "fused"
        return "reranker" if "reranker" in s else "retriever"


@dataclass
class RerankResult:
    rows: list[RerankRow] = field(default_factory=list)
    top_k: int = 0
    queries: int = 0
    fusion_weight: float | None = None
    base_model: str = ""
    fresh_head: bool = False
    notes: list[str] = field(default_factory=list)
    evaluated: bool = False
    trained: bool = True
    reason: str = ""
    """Why no reranker was trained (``trained`` False), in the engine's words."""
    decision: str = ""
    """What search does with the reranker (fusion weight, or not used), and why."""

    def best(self, metric: str = "ndcg@10") -> RerankRow | None:
        scored = [r for r in self.rows if metric in r.metrics]
        return max(scored, key=lambda r: r.metrics[metric], default=None)


@dataclass
class Results:
    suites: dict[str, SuiteResult] = field(default_factory=dict)
    primary_metric: str = "ndcg@10"
    reranker: RerankResult | None = None
    recommendation: Recommendation | None = None
    fusion: FusionSettings | None = None
    """The fusion the hybrid rows were measured with (and search uses)."""

    @property
    def empty(self) -> bool:
        return not self.suites and self.reranker is None

    def suite(self, name: str) -> SuiteResult | None:
        return self.suites.get(name)


def parse_results(data: dict[str, Any]) -> Results:
    out = Results()
    emb = data.get("embedder") if isinstance(data, dict) else None
    if isinstance(emb, dict):
        out.primary_metric = str(emb.get("primary_metric") or out.primary_metric)
        for name in SUITES:
            part = emb.get(name)
            if isinstance(part, dict):
                out.suites[name] = parse_suite(name, part)
        out.recommendation = _recommendation(emb.get("recommendation"))
        out.fusion = _fusion(emb.get("fusion"))
    rr = data.get("reranker") if isinstance(data, dict) else None
    if isinstance(rr, dict):
        result = RerankResult(
            fusion_weight=rr.get("fusion_weight"),
            base_model=str(rr.get("base_model", "")),
            fresh_head=bool(rr.get("fresh_head", False)),
            trained=bool(rr.get("trained", True)),
            reason=str(rr.get("reason", "")),
        )
        ev = rr.get("evaluation")
        if isinstance(ev, dict):
            result.evaluated = True
            result.top_k = int(ev.get("top_k", 0) or 0)
            result.queries = int(ev.get("queries", 0) or 0)
            result.notes = [str(n) for n in ev.get("notes", [])]
            result.decision = str(ev.get("decision", "") or "")
            for candidates, systems in (ev.get("rows") or {}).items():
                for system, metrics in (systems or {}).items():
                    nums = {
                        k: float(v)
                        for k, v in (metrics or {}).items()
                        if isinstance(v, (int, float))
                    }
                    result.rows.append(RerankRow(str(candidates), str(system), nums))
        rank = {"retriever": 0, "reranker": 1, "fused": 2}
        result.rows.sort(key=lambda r: rank[r.kind])  # stable: candidate sets keep their order
        out.reranker = result
    return out


def parse_suite(name: str, part: dict[str, Any]) -> SuiteResult:
    """One suite as metrics.json (or ``ragtune eval --json``) stores it."""
    return SuiteResult(
        name=name,
        queries=int(part.get("queries", 0) or 0),
        corpus=int(part.get("corpus", 0) or 0),
        base=split_flat(part.get("base", {})),
        tuned=split_flat(part.get("tuned", {})),
        base_rotated=split_flat(part.get("base_rotated", {})),
        gains=_gains(part.get("gains")),
        others={
            k: split_flat(v)
            for k, v in (part.get("retrievers") or {}).items()
            if isinstance(v, dict)
        },
        changes={
            k: _gains(v) for k, v in (part.get("changes") or {}).items() if isinstance(v, dict)
        },
    )


def _gains(data: Any) -> dict[int, Gain]:
    if not isinstance(data, dict):
        return {}
    against, queries = str(data.get("against", "")), int(data.get("queries", 0) or 0)
    return {
        int(dim): Gain(
            int(dim), float(g["mean"]), float(g["low"]), float(g["high"]), against, queries
        )
        for dim, g in (data.get("by_dim") or {}).items()
    }


def _gain(data: Any, against: str, dim: int) -> Gain | None:
    if not isinstance(data, dict):
        return None
    return Gain(
        dim, float(data["mean"]), float(data["low"]), float(data["high"]), against,
        int(data.get("queries", 0) or 0),
    )  # fmt: skip


def _fusion(data: Any) -> FusionSettings | None:
    if not isinstance(data, dict):
        return None
    try:
        return FusionSettings(
            method=str(data["method"]),
            weight=float(data["weight"]),
            rrf_k=int(data.get("rrf_k", DEFAULT_RRF_K)),
            depth=int(data.get("depth", DEFAULT_DEPTH)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _recommendation(data: Any) -> Recommendation | None:
    if not isinstance(data, dict) or not data.get("retriever"):
        return None
    dim = int(data.get("dim", 0) or 0)
    runner_up = str(data.get("runner_up", ""))
    return Recommendation(
        retriever=str(data["retriever"]),
        dim=dim,
        suite=str(data.get("suite", "")),
        queries=int(data.get("queries", 0) or 0),
        query_source=str(data.get("query_source", "")),
        ndcg=float(data.get("ndcg", 0.0) or 0.0),
        vs_base=_gain(data.get("vs_base"), "dense base", dim),
        runner_up=runner_up,
        vs_runner_up=_gain(data.get("vs_runner_up"), RETRIEVER_LABELS.get(runner_up, ""), dim),
        fusion=str(data.get("fusion", "")),
        reason=str(data.get("reason", "")),
        caveats=[str(c) for c in data.get("caveats") or []],
    )


def read_results(metrics_path: str | Path) -> Results:
    """Empty results when no stage has written the file yet; a damaged one is
    ``MetricsFileError``, which names the file and the fix."""
    return parse_results(MetricsFile(metrics_path).read())
