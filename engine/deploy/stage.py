"""The deploy stage: what each way of shipping the model costs in quality, index size and speed.

For the fine-tuned model at every Matryoshka size x {float32, int8, binary} stored vectors
(and, when asked, its ONNX and int8 ONNX exports), nDCG@10 on the held-out queries and on the
benchmark with paired-bootstrap intervals, index bytes per passage, and encode speed as a ratio
to torch float32 measured in the same run. Suggests the smallest setting the deciding queries
cannot tell from the best one. Optionally chooses a base <-> fine-tuned interpolation weight.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.config import RunConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.metrics_file import MetricsFile
from ragtune.engine.core.payloads import DeploySummary
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.deploy.measure import (
    PRECISIONS,
    Encoded,
    encode_suite,
    judged,
    score,
    texts_per_second,
)
from ragtune.engine.deploy.results import KEY, interval_dict
from ragtune.engine.evaluate.keys import metric_key
from ragtune.engine.evaluate.stats import Interval, bootstrap_mean, paired_gain

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

INTERPOLATED_DIR = "embedder-interpolated"
# Rounds of the speed measurement, interleaved across encoders; the best round of each counts,
# so a burst of load from elsewhere on the machine does not decide the ratio.
SPEED_ROUNDS = 3


def interpolated_dir(ws: Workspace) -> Path:
    return ws.models_dir / INTERPOLATED_DIR


def run_deploy(cfg: RunConfig, ws: Workspace, events: Emitter) -> dict[str, Any]:
    from ragtune.engine.core.models import for_inference, load_embedder, pick_device
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.embedder.train import column_prompts, model_dims
    from ragtune.engine.evaluate.saved import saved_or_encoded
    from ragtune.engine.evaluate.stage import load_benchmark

    dcfg = cfg.deploy
    prepared = load_prepared(ws)
    device = pick_device(cfg.embedder.device)
    trust = cfg.embedder.trust_remote_code
    tuned = load_embedder(str(ws.embedder_dir), device=device, trust_remote_code=trust)
    dims = model_dims(tuned, cfg.embedder)
    prompts = column_prompts(tuned, cfg.embedder)
    encode_args: dict[str, Any] = {
        "query_prompt": prompts.get("anchor"),
        "document_prompt": prompts.get("positive"),
    }
    suites: list[tuple[str, Any]] = []
    if prepared.eval_queries:
        suites.append(("held-out", prepared.ir_data()))
    if cfg.eval.benchmark:
        suites.append(("benchmark", load_benchmark(cfg, ws, events)))

    out: dict[str, Any] = {"suites": {}}
    torch_encoded: dict[str, Encoded] = {}
    with tempfile.TemporaryDirectory(prefix="ragtune-deploy-") as tmp:
        # Exported from the float32 weights; the torch rows then encode in the training
        # precision, as the evaluate stage did, whose saved embeddings they read.
        backends = _backends(tuned, dcfg.backends, Path(tmp), prepared, events)
        for_inference(tuned, cfg.embedder.precision, device)
        encode_args["batch_size"] = cfg.eval.encode_batch(device)
        encoders = {"torch": tuned, **backends}
        texts = [prepared.corpus[c] for c in sorted(prepared.corpus)][: dcfg.throughput_texts]
        events.info(f"timing {len(encoders)} encoder(s) on {len(texts)} passages")
        speed = _speeds(encoders, texts, encode_args["batch_size"], prompts.get("positive"))
        out["throughput_texts"] = len(texts)
        out["texts_per_second"] = speed
        for suite, data in suites:
            saved = saved_or_encoded(
                ws, suite, "tuned", tuned, str(ws.embedder_dir), data, events=events, **encode_args
            )
            encoded = {"torch": Encoded.from_suite(saved, data)}
            for name, model in backends.items():
                events.info(f"deploy table: encoding {suite} queries and passages with {name}")
                encoded[name] = encode_suite(model, data, **encode_args)
            torch_encoded[suite] = encoded["torch"]
            out["suites"][suite] = _suite_table(
                encoded, dims, dcfg.table, speed, _baseline(ws, suite, dims)
            )
    decide = "benchmark" if "benchmark" in out["suites"] else "held-out"
    if decide in out["suites"]:
        out["suggestion"] = _suggest(out["suites"][decide], decide)
    if dcfg.interpolate and prepared.eval_queries:
        # The table is kept even when the slower interpolation is stopped or fails.
        MetricsFile(ws.metrics_path).write(KEY, out)
        corpus = list(prepared.corpus.values())
        out["interpolation"] = _interpolation(
            cfg, ws, tuned, suites, corpus, dims, encode_args, events, torch_encoded
        )
    MetricsFile(ws.metrics_path).write(KEY, out)
    from ragtune.engine.deploy.report import render_markdown
    from ragtune.engine.deploy.results import parse_deploy

    results = parse_deploy(out)
    (ws.root / "report_deploy.md").write_text(render_markdown(results), encoding="utf-8")
    best, interp = results.suggestion, results.interpolation
    return DeploySummary(
        rows=sum(len(suite["rows"]) for suite in out["suites"].values()),
        suggestion=f"{best.encoder} {best.dim} {best.precision}" if best else None,
        interpolation_weight=interp.chosen if interp else None,
    ).to_dict()


def _backends(
    tuned: SentenceTransformer, names: list[str], tmp: Path, prepared: Any, events: Emitter
) -> dict[str, SentenceTransformer]:
    """Each requested backend exported at full size (sizes are then cut as for torch) and
    loaded back; the same files ``ragtune export`` writes."""
    if not names:
        return {}
    from ragtune.engine.embedder.train import embedding_dim
    from ragtune.engine.export.onnx import export_formats, load_exported

    sample = [prepared.corpus[c] for c in sorted(prepared.corpus)][:32]
    folder = tmp / "export"
    for check in export_formats(tuned, folder, names, dim=embedding_dim(tuned), sample=sample):
        events.info(
            f"{check.format}: largest difference from torch {check.max_abs_diff:.2e} "
            f"(lowest cosine {check.min_cosine:.5f}) on {check.texts} passages"
        )
    return {name: load_exported(folder, name) for name in names}


def _speeds(
    encoders: dict[str, SentenceTransformer], texts: list[str], batch_size: int, prompt: str | None
) -> dict[str, float]:
    best = dict.fromkeys(encoders, 0.0)
    for _ in range(SPEED_ROUNDS):
        for name, model in encoders.items():
            rate = texts_per_second(model, texts, batch_size=batch_size, document_prompt=prompt)
            best[name] = max(best[name], rate)
    return best


def _suite_table(
    encoded: dict[str, Encoded],
    dims: list[int],
    table: bool,
    speed: dict[str, float],
    baseline: tuple[str, dict[int, float]],
) -> dict[str, Any]:
    torch_rate = speed["torch"]
    scored: list[tuple[dict[str, Any], np.ndarray]] = []
    for name, enc in encoded.items():
        precisions = PRECISIONS if (name == "torch" and table) else ("float32",)
        for dim in dims:
            for precision in precisions:
                per_query, size, quantise_s = score(enc, dim, precision)
                # Encoding and quantising one passage, against torch encoding it in float32.
                seconds = 1.0 / speed[name] + quantise_s
                row = {
                    "encoder": name,
                    "dim": dim,
                    "precision": precision,
                    "ndcg@10": interval_dict(bootstrap_mean(per_query)),
                    "bytes_per_chunk": size,
                    "encode_ratio": (1.0 / torch_rate) / seconds,
                }
                scored.append((row, per_query))
    best_row, best_pq = max(scored, key=lambda item: float(item[1].mean()))
    for row, per_query in scored:
        row["vs_best"] = interval_dict(
            Interval(0.0, 0.0, 0.0) if row is best_row else paired_gain(per_query, best_pq)
        )
    queries = len(next(iter(encoded.values())).queries)
    label, values = baseline
    return {
        "queries": queries,
        "rows": [row for row, _ in scored],
        "baseline": {str(d): v for d, v in values.items()},
        "baseline_label": label,
    }


def _baseline(ws: Workspace, suite: str, dims: list[int]) -> tuple[str, dict[int, float]]:
    """The evaluate stage's untrained baseline on this suite: base + rotation, else base."""
    emb = (MetricsFile(ws.metrics_path).section("embedder") or {}).get(suite, {})
    name = "base_rotated" if "base_rotated" in emb else "base"
    scores = emb.get(name, {})
    label = "base + rotation" if name == "base_rotated" else "base"
    return label, {d: float(scores[k]) for d in dims if (k := metric_key(d, "ndcg@10")) in scores}


def _suggest(suite: dict[str, Any], name: str) -> dict[str, Any]:
    """Smallest index among the rows whose difference from the best reaches 0; then fastest."""
    rows = suite["rows"]
    best = max(rows, key=lambda r: r["ndcg@10"]["mean"])
    within = [r for r in rows if r["vs_best"]["high"] >= 0]
    pick = min(
        within, key=lambda r: (r["bytes_per_chunk"], -r["encode_ratio"], -r["ndcg@10"]["mean"])
    )
    gap = pick["vs_best"]
    largest = max(r["bytes_per_chunk"] for r in rows)
    size = f"{pick['bytes_per_chunk']} bytes per passage instead of {largest} (full size, float32)"
    if pick is best:
        reason = (
            f"the best row on the {suite['queries']} {name} queries "
            f"({pick['ndcg@10']['mean']:.4f}) is also the smallest within its interval: {size}"
        )
    else:
        reason = (
            f"the smallest index whose nDCG@10 the {suite['queries']} {name} queries cannot "
            f"tell from the best ({best['encoder']} {best['dim']} {best['precision']}, "
            f"{best['ndcg@10']['mean']:.4f}): {pick['ndcg@10']['mean']:.4f}, "
            f"{gap['mean']:+.4f} [{gap['low']:+.4f}, {gap['high']:+.4f}], {size}"
        )
    return {
        "encoder": pick["encoder"],
        "dim": pick["dim"],
        "precision": pick["precision"],
        "suite": name,
        "reason": reason,
    }


def _interpolation(
    cfg: RunConfig,
    ws: Workspace,
    tuned: SentenceTransformer,
    suites: list[tuple[str, Any]],
    corpus: list[str],
    dims: list[int],
    encode_args: dict[str, Any],
    events: Emitter,
    tuned_encoded: dict[str, Encoded],
) -> dict[str, Any]:
    """Weight chosen on one half of the held-out queries, reported on the other half and on
    the benchmark (never used to choose), against the fine-tuned model and base + rotation."""
    import torch

    from ragtune.engine.core.models import inference_autocast, load_embedder
    from ragtune.engine.deploy.merge import interpolate, merge_method, strip_rotation
    from ragtune.engine.evaluate.ir import primary_dim

    dim = primary_dim(dims)
    device, trust = str(tuned.device), cfg.embedder.trust_remote_code
    base = load_embedder(cfg.embedder.base_model, device=device, trust_remote_code=trust)
    if next(tuned.parameters()).dtype != torch.float32:
        # Mixed from the float32 weights (the saved mixture stays float32); the table's
        # model was cast to the inference dtype.
        tuned = load_embedder(str(ws.embedder_dir), device=device, trust_remote_code=trust)
    core = strip_rotation(tuned) if cfg.embedder.corpus_rotation else tuned
    held = dict(suites)["held-out"]
    n = len(judged(held)[0])
    order = list(range(n))
    random.Random(cfg.run.seed).shuffle(order)
    select = np.array(sorted(order[: n // 2 or 1]))
    report = np.array(sorted(order[n // 2 or 1 :]))
    weights = sorted({*cfg.deploy.interpolation_weights, 0.0, 1.0})

    def build(weight: float) -> SentenceTransformer:
        model = interpolate(core, base, weight)
        if cfg.embedder.corpus_rotation:
            from ragtune.engine.embedder.rotation import rotate_for_corpus

            rotate_for_corpus(
                model,
                corpus,
                batch_size=encode_args["batch_size"],
                document_prompt=encode_args["document_prompt"],
                seed=cfg.embedder.seed,
            )
        return model

    per_weight: dict[float, dict[str, np.ndarray]] = {}
    best: tuple[float, float, SentenceTransformer | None] = (-1.0, -1.0, None)
    for weight in weights:
        events.info(f"interpolation: weight {weight:g} of the fine-tuned model")
        if weight == 1.0:
            # The fine-tuned model itself (its rotation refitted by the same recipe is the
            # same rotation): the table's torch encodings, not a third encode.
            per_weight[weight] = {
                suite: score(tuned_encoded[suite], dim, "float32")[0] for suite, _ in suites
            }
            model = None
        else:
            # In the inference dtype, as the table's model, while the weights stay float32.
            with inference_autocast(cfg.embedder.precision, device):
                model = build(weight)
                per_weight[weight] = {
                    suite: score(encode_suite(model, data, **encode_args), dim, "float32")[0]
                    for suite, data in suites
                }
        mean = float(per_weight[weight]["held-out"][select].mean())
        if (mean, weight) > best[:2]:
            best = (mean, weight, model)
    tried = [(w, float(per_weight[w]["held-out"][select].mean())) for w in weights]
    chosen = best[1]

    def block(suite: str, rows: np.ndarray | None) -> dict[str, Any]:
        pick = {w: v[suite] if rows is None else v[suite][rows] for w, v in per_weight.items()}
        return {
            "chosen": interval_dict(bootstrap_mean(pick[chosen])),
            "tuned": interval_dict(bootstrap_mean(pick[1.0])),
            "base_rotated" if cfg.embedder.corpus_rotation else "base": interval_dict(
                bootstrap_mean(pick[0.0])
            ),
            "vs_tuned": interval_dict(paired_gain(pick[chosen], pick[1.0])),
            "vs_base": interval_dict(paired_gain(pick[chosen], pick[0.0])),
        }

    result: dict[str, Any] = {
        "dim": dim,
        "method": merge_method(),
        "select_queries": len(select),
        "report_queries": len(report),
        "tried": [[w, s] for w, s in tried],
        "chosen": chosen,
        "report": {"held-out": block("held-out", report if len(report) else select)},
    }
    if "benchmark" in per_weight[1.0]:
        result["report"]["benchmark"] = block("benchmark", None)
    target = interpolated_dir(ws)
    if chosen < 1.0 and best[2] is not None:
        best[2].save(str(target))
        result["saved"] = str(target)
    return result
