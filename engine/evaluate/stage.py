"""The evaluation stage: base vs fine-tuned embedder per Matryoshka dim, into metrics.json and report.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragtune.engine.config import RunConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.metrics_file import MetricsFile
from ragtune.engine.core.models import for_inference, load_embedder, pick_device
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.data.prepare import load_prepared
from ragtune.engine.embedder.train import column_prompts, model_dims


def load_benchmark(cfg: RunConfig, ws: Workspace, events: Emitter) -> Any:
    """A BEIR folder as is, or quote-labelled questions mapped onto this run's chunks."""
    from ragtune.engine.core.records import read_chunks
    from ragtune.engine.evaluate.beir import load_beir
    from ragtune.engine.evaluate.labels import is_quote_folder, load_quote_labels

    folder = cfg.resolve(cfg.eval.benchmark)
    if is_quote_folder(folder):
        return load_quote_labels(folder, read_chunks(ws.chunks_path), events)
    return load_beir(folder)


def corpus_rotation(cfg: RunConfig, prepared: Any, corpus: Any, device: str, base: Any) -> Any:
    """The rotation the fine-tuned model gets, fitted here for the untrained base: the baseline
    that shows what training itself added at truncated sizes. ``corpus`` is the base model's
    embeddings of ``prepared.corpus`` (id order) when a suite made them, so nothing is encoded
    twice; else the passages are encoded for the fit alone."""
    import torch

    from ragtune.engine.embedder.rotation import fit_rotation, rotation_for_corpus

    if corpus is None:
        prompts = column_prompts(base, cfg.embedder)
        return torch.from_numpy(
            fit_rotation(
                base,
                list(prepared.corpus.values()),
                batch_size=cfg.eval.encode_batch(device),
                document_prompt=prompts.get("positive"),
                seed=cfg.embedder.seed,
            )
        )
    return torch.from_numpy(rotation_for_corpus(list(prepared.corpus), corpus, cfg.embedder.seed))


def run_evaluate(cfg: RunConfig, ws: Workspace, events: Emitter) -> dict[str, Any]:
    from ragtune.engine.evaluate.ir import (
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
    precision = cfg.embedder.precision
    names = {"base": cfg.embedder.base_model, "tuned": str(ws.embedder_dir)}
    base, tuned = (
        for_inference(
            load_embedder(names[m], device=device, trust_remote_code=trust), precision, device
        )
        for m in ("base", "tuned")
    )
    batch = cfg.eval.encode_batch(device)  # after loading: sized to the memory left
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
    # Each corpus is encoded once per model; the suites share it, and base + rotation is a
    # linear map of the base model's embeddings.
    encoded = {label: _encode_suites(ws, model, names[label], label, suites, batch, prompts, events)
               for label, model in (("base", base), ("tuned", tuned))}  # fmt: skip
    systems = ["base", "tuned"]
    if cfg.embedder.corpus_rotation:
        held_out = encoded["base"].get("held-out")  # the held-out suite's corpus is every chunk
        shared = held_out.corpus if held_out else None
        rotation = corpus_rotation(cfg, prepared, shared, device, base)
        encoded["base_rotated"] = {s: e.mapped(rotation) for s, e in encoded["base"].items()}
        systems.insert(1, "base_rotated")
    measured: dict[str, Measured] = {}
    for suite, data in suites:
        m = measured[suite] = Measured(data)
        for label in systems:
            m.per_query[label] = {}
            m.rankings[label] = {}
            m.scores[label] = evaluate_retrieval(
                tuned if label == "tuned" else base,
                data,
                dims,
                k_values=k_values,
                events=events,
                label=f"{suite}/{label}",
                per_query=m.per_query[label],
                rankings=m.rankings[label],
                depth=cfg.retrieval.depth,
                embeddings=encoded[label][suite],
            )
        baseline = "base_rotated" if "base_rotated" in m.per_query else "base"
        against = "base + rotation" if baseline == "base_rotated" else "base"
        gains = training_gains(m.per_query["tuned"], m.per_query[baseline], dims)
        rows = compare(
            m.scores["base"],
            m.scores["tuned"],
            dims,
            COMPARE_METRICS,
            rotated=m.scores.get("base_rotated"),
        )
        results[suite] = {
            "queries": len(data.queries),
            "corpus": len(data.corpus),
            **m.scores,
            "rows": rows,
            "gains": {
                "against": against,
                "queries": _judged(m.per_query["tuned"]),
                "by_dim": gains,
            },
        }
        sections.append(
            f"### {suite} queries ({len(data.queries)} queries, {len(data.corpus)} passages)\n\n"
            + render_markdown(rows)
            + "\n"
            + render_gains_markdown(gains, _judged(m.per_query["tuned"]), against)
        )
    if measured:
        add_retrievers(cfg, ws, measured, results, dims, k_values, events)
    primary = "benchmark" if "benchmark" in results else "held-out"
    if primary in results:
        # Front ends read the headline suite here without knowing which suites exist.
        results["suite"] = primary
        results["base"] = results[primary]["base"]
        results["tuned"] = results[primary]["tuned"]
    MetricsFile(ws.metrics_path).write("embedder", results)
    from ragtune.engine.evaluate.results import read_results
    from ragtune.engine.evaluate.tables import recommendation_markdown, retrievers_markdown

    typed = read_results(ws.metrics_path)
    for i, (suite, _) in enumerate(suites):
        sections[i] += "\n" + retrievers_markdown(typed.suites[suite])
    report = (
        f"## Embedder: {cfg.embedder.base_model} → fine-tuned\n\n"
        + (recommendation_markdown(typed.recommendation) + "\n" if typed.recommendation else "")
        + "\n\n".join(sections)
        + "\n"
    )
    (ws.root / "report_embedder.md").write_text(report, encoding="utf-8")
    return {"report": report, "suites": [s for s, _ in suites]}


def _encode_suites(
    ws: Workspace,
    model: Any,
    name: str,
    label: str,
    suites: list[tuple[str, Any]],
    batch_size: int,
    prompts: dict[str, str],
    events: Emitter,
) -> dict[str, Any]:
    """One model's embeddings of every suite, a corpus that two suites share encoded once,
    saved in the workspace for the deploy stage and for a rerun with the same model."""
    from ragtune.engine.core.stages import digest
    from ragtune.engine.evaluate.saved import saved_or_encoded

    out: dict[str, Any] = {}
    by_corpus: dict[str, Any] = {}
    for suite, data in suites:
        key = digest(sorted(data.corpus.items()))
        out[suite] = saved_or_encoded(
            ws,
            suite,
            label,
            model,
            name,
            data,
            batch_size=batch_size,
            query_prompt=prompts.get("anchor"),
            document_prompt=prompts.get("positive"),
            events=events,
            corpus=by_corpus.get(key),
        )
        by_corpus[key] = out[suite].corpus
    return out


@dataclass
class Measured:
    """One suite's dense results, kept until BM25 and the fusions are scored beside them."""

    data: Any
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    per_query: dict[str, dict[str, Any]] = field(default_factory=dict)
    rankings: dict[str, dict[int, list[list[tuple[str, float]]]]] = field(default_factory=dict)


# BM25 weights tried when retrieval.weight = -1 (choose on judging queries).
WEIGHT_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def add_retrievers(
    cfg: RunConfig,
    ws: Workspace,
    measured: dict[str, Measured],
    results: dict[str, Any],
    dims: list[int],
    k_values: tuple[int, ...],
    events: Emitter,
) -> None:
    """BM25 and the hybrids on every suite, each retriever's change against the dense base,
    and the recommendation, into ``results`` (metrics.json's embedder section)."""
    from ragtune.engine.evaluate.hybrid import bm25_rankings, index_for, score_bm25, score_hybrid
    from ragtune.engine.evaluate.ir import metric_key, training_gains
    from ragtune.engine.evaluate.recommend import (
        can_judge_fusion,
        judging_suite,
        query_source,
        recommend,
    )
    from ragtune.engine.retrieval.fusion import DEFAULT_WEIGHT
    from ragtune.engine.retrieval.settings import bm25_settings, fusion_settings
    from ragtune.engine.retrieval.stage import index_dir, load_index

    rc = cfg.retrieval
    workspace_index = load_index(ws) if index_dir(ws.root).is_dir() else None
    kw = {"k_values": k_values}
    bm25: dict[str, Any] = {}
    for suite, m in measured.items():
        index = index_for(m.data, workspace_index, bm25_settings(rc))
        bm25[suite] = bm25_rankings(index, m.data, rc.depth)

    judge = judging_suite(list(measured))
    source = query_source(judge, cfg.generation.resolved)
    full = max(dims)
    weight = None
    chosen_on = (
        "the documented default" if rc.weight == DEFAULT_WEIGHT else "set in retrieval.weight"
    )
    if rc.weight < 0:
        if can_judge_fusion(source):
            m = measured[judge]
            curve = {}
            for w in WEIGHT_GRID:
                _, pq = score_hybrid(
                    {full: m.rankings["tuned"][full]}, bm25[judge], m.data, fusion_settings(rc, w)
                )
                curve[w] = float(next(iter(pq.values())).mean())
            # For the hybrid that ships with the fine-tuned model; ties go to less BM25.
            weight = max(WEIGHT_GRID, key=lambda w: (curve[w], -w))
            chosen_on = (
                f"chosen on the {_judged(m.per_query['tuned'])} {source} from "
                f"{len(WEIGHT_GRID)} weights "
                "(the same queries report it, so its number there is slightly optimistic)"
            )
        else:
            chosen_on = f"the documented default: {source} cannot judge a fusion weight"
    fusion = fusion_settings(rc, weight)
    results["fusion"] = {
        "method": fusion.method,
        "weight": fusion.weight,
        "rrf_k": fusion.rrf_k,
        "depth": fusion.depth,
        "chosen_on": chosen_on,
    }

    for suite, m in measured.items():
        scores, per_query = dict(m.scores), dict(m.per_query)
        scores["bm25"], per_query["bm25"] = score_bm25(bm25[suite], m.data, dims, **kw)
        dense_base = "base_rotated" if "base_rotated" in m.rankings else "base"
        for name, dense in (("hybrid_base", dense_base), ("hybrid_tuned", "tuned")):
            scores[name], per_query[name] = score_hybrid(
                m.rankings[dense], bm25[suite], m.data, fusion, **kw
            )
        n = _judged(per_query["base"])
        results[suite]["retrievers"] = {
            k: scores[k] for k in ("bm25", "hybrid_base", "hybrid_tuned")
        }
        results[suite]["changes"] = {
            k: {
                "against": "dense base",
                "queries": n,
                "by_dim": training_gains(per_query[k], per_query["base"], dims),
            }
            for k in per_query
            if k != "base"
        }
        m.per_query = per_query
        if suite == judge:
            key = metric_key(full, "ndcg@10")
            at_full = {k: v[key] for k, v in per_query.items() if key in v}
            results["recommendation"] = recommend(
                at_full, dim=full, suite=suite, source=source,
                fusion=f"{fusion.describe()} ({chosen_on})",
            )  # fmt: skip
    events.info(
        "recommended retriever: " + results["recommendation"]["reason"]
        if "recommendation" in results
        else "no recommendation: nothing was measured"
    )


def _judged(per_query: dict[str, Any]) -> int:
    """How many queries the per-query scores cover (those with a judged passage)."""
    return len(next(iter(per_query.values()), ()))


def headline(results: dict[str, Any], metric: str = "ndcg@10") -> list[tuple[int, float, float]]:
    """(dim, base, tuned) for the primary metric of the first suite, for a one-line summary."""
    from ragtune.engine.evaluate.keys import metric_key

    for suite in ("benchmark", "held-out"):
        if suite in results:
            base, tuned = results[suite]["base"], results[suite]["tuned"]
            keys = {d: metric_key(d, metric) for d in results["dims"]}
            return [(d, base[k], tuned[k]) for d, k in keys.items()]
    return []
