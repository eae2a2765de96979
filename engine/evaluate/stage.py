"""The evaluation stage: base vs fine-tuned embedder per Matryoshka dim, into metrics.json and report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.core.events import Emitter
from engine.core.models import load_embedder, pick_device
from engine.core.workspace import Workspace
from engine.data.prepare import load_prepared
from engine.embedder.train import column_prompts, model_dims


def update_metrics(path: Path, key: str, value: Any) -> None:
    """metrics.json is shared by stages: each owns one top-level key. A damaged file is
    started afresh: the stages whose keys it lost see them missing and run again."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data[key] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def load_benchmark(cfg: RunConfig, ws: Workspace, events: Emitter) -> Any:
    """A BEIR folder as is, or quote-labelled questions mapped onto this run's chunks."""
    from engine.core.records import read_chunks
    from engine.evaluate.beir import load_beir
    from engine.evaluate.labels import is_quote_folder, load_quote_labels

    folder = cfg.resolve(cfg.eval.benchmark)
    if is_quote_folder(folder):
        return load_quote_labels(folder, read_chunks(ws.chunks_path), events)
    return load_beir(folder)


def rotated_base(cfg: RunConfig, prepared: Any, prompts: dict[str, str], device: str) -> Any:
    """The base model with the same corpus rotation the fine-tuned one gets, untrained: the
    baseline that shows what training itself added at truncated sizes."""
    from engine.embedder.rotation import rotate_for_corpus

    model = load_embedder(
        cfg.embedder.base_model, device=device, trust_remote_code=cfg.embedder.trust_remote_code
    )
    return rotate_for_corpus(
        model,
        prepared.corpus.values(),
        batch_size=cfg.eval.batch_size,
        document_prompt=prompts.get("positive"),
        seed=cfg.embedder.seed,
    )


def run_evaluate(cfg: RunConfig, ws: Workspace, events: Emitter) -> dict[str, Any]:
    from engine.evaluate.ir import (
        COMPARE_METRICS,
        compare,
        evaluate_retrieval,
        render_gains_markdown,
        render_markdown,
        training_gains,
    )

    prepared = load_prepared(ws)
    device = pick_device(cfg.embedder.device)
    trust = cfg.embedder.trust_remote_code
    base = load_embedder(cfg.embedder.base_model, device=device, trust_remote_code=trust)
    tuned = load_embedder(str(ws.embedder_dir), device=device, trust_remote_code=trust)
    dims = model_dims(base, cfg.embedder)
    prompts = column_prompts(base, cfg.embedder)
    k_values = tuple(cfg.eval.k_values)

    suites: list[tuple[str, Any]] = []
    if prepared.eval_queries:
        suites.append(("held-out", prepared.ir_data()))
    if cfg.eval.benchmark:
        suites.append(("benchmark", load_benchmark(cfg, ws, events)))

    results: dict[str, Any] = {"dims": dims, "primary_metric": cfg.eval.primary_metric}
    sections: list[str] = []
    systems = [("base", base), ("tuned", tuned)]
    if cfg.embedder.corpus_rotation:
        systems.insert(1, ("base_rotated", rotated_base(cfg, prepared, prompts, device)))
    for suite, data in suites:
        scores = {}
        per_query: dict[str, dict[str, Any]] = {}
        for label, model in systems:
            per_query[label] = {}
            scores[label] = evaluate_retrieval(
                model,
                data,
                dims,
                k_values=k_values,
                batch_size=cfg.eval.batch_size,
                query_prompt=prompts.get("anchor"),
                document_prompt=prompts.get("positive"),
                events=events,
                label=f"{suite}/{label}",
                per_query=per_query[label],
            )
        baseline = "base_rotated" if "base_rotated" in per_query else "base"
        against = "base + rotation" if baseline == "base_rotated" else "base"
        gains = training_gains(per_query["tuned"], per_query[baseline], dims)
        rows = compare(
            scores["base"],
            scores["tuned"],
            dims,
            COMPARE_METRICS,
            rotated=scores.get("base_rotated"),
        )
        results[suite] = {
            "queries": len(data.queries),
            "corpus": len(data.corpus),
            **scores,
            "rows": rows,
            "gains": {"against": against, "queries": _judged(per_query["tuned"]), "by_dim": gains},
        }
        sections.append(
            f"### {suite} queries ({len(data.queries)} queries, {len(data.corpus)} passages)\n\n"
            + render_markdown(rows)
            + "\n"
            + render_gains_markdown(gains, _judged(per_query["tuned"]), against)
        )
    primary = "benchmark" if "benchmark" in results else "held-out"
    if primary in results:
        # Front ends read the headline suite here without knowing which suites exist.
        results["suite"] = primary
        results["base"] = results[primary]["base"]
        results["tuned"] = results[primary]["tuned"]
    update_metrics(ws.metrics_path, "embedder", results)
    report = (
        f"## Embedder: {cfg.embedder.base_model} → fine-tuned\n\n" + "\n\n".join(sections) + "\n"
    )
    (ws.root / "report_embedder.md").write_text(report, encoding="utf-8")
    return {"report": report, "suites": [s for s, _ in suites]}


def _judged(per_query: dict[str, Any]) -> int:
    """How many queries the per-query scores cover (those with a judged passage)."""
    return len(next(iter(per_query.values()), ()))


def headline(results: dict[str, Any], metric: str = "ndcg@10") -> list[tuple[int, float, float]]:
    """(dim, base, tuned) for the primary metric of the first suite, for a one-line summary."""
    for suite in ("benchmark", "held-out"):
        if suite in results:
            base, tuned = results[suite]["base"], results[suite]["tuned"]
            return [
                (d, base[f"dim_{d}_cosine_{metric}"], tuned[f"dim_{d}_cosine_{metric}"])
                for d in results["dims"]
            ]
    return []
