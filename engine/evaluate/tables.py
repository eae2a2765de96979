"""Markdown tables of the typed results, for report.md and the model card."""

from __future__ import annotations

from ragtune.engine.evaluate.results import Recommendation, SuiteResult


def retrievers_markdown(suite: SuiteResult, metric: str = "ndcg@10") -> str:
    """Every retriever per size, with its change against the dense base and the 95%
    paired-bootstrap interval."""
    from ragtune.engine.evaluate.stats import CONFIDENCE

    rows = suite.retriever_rows(metric)
    if not rows:
        return ""
    dims = sorted({d for r in rows for d in r.values}, reverse=True)
    queries = next((g.queries for r in rows for g in r.changes.values()), suite.queries)
    lines = [
        f"Retrievers, {metric} (change against the dense base, {CONFIDENCE:.0%} paired-bootstrap "
        f"interval over {queries} queries):",
        "",
        "| retriever | " + " | ".join(str(d) for d in dims) + " |",
        "| --- |" + " ---: |" * len(dims),
    ]
    for row in rows:
        cells = []
        for d in dims:
            value, g = row.values.get(d), row.changes.get(d)
            cell = "" if value is None else f"{value:.4f}"
            if g is not None and value is not None:
                cell += f" ({g.mean:+.4f} [{g.low:+.4f}, {g.high:+.4f}])"
            cells.append(cell)
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def recommendation_markdown(rec: Recommendation) -> str:
    lines = [f"**Recommended retriever: {rec.label}.** {rec.reason}."]
    if rec.hybrid or rec.retriever == "bm25":
        lines.append(f"Fusion: {rec.fusion}.")
    lines += [f"Note: {c}." for c in rec.caveats]
    return "\n\n".join(lines) + "\n"
