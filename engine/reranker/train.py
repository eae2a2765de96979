"""The reranker stage: mine negatives, fine-tune a cross-encoder, prove it on held-out queries."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.config import RunConfig
from ragtune.engine.config.reranker import RerankerConfig
from ragtune.engine.core.errors import Cancelled, OfflineError
from ragtune.engine.core.events import Emitter, EvalRow, is_main_process
from ragtune.engine.core.metrics_file import MetricsFile
from ragtune.engine.core.models import (
    for_inference,
    hub_kwargs,
    hub_reachable,
    is_network_error,
    load_cross_encoder,
    load_embedder,
    pick_device,
    resolve_model,
)
from ragtune.engine.core.payloads import RerankSummary
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.data.prepare import load_prepared
from ragtune.engine.embedder.train import attach_prompts
from ragtune.engine.reranker.evaluate import (
    Candidates,
    RerankReport,
    checkpoint_queries,
    evaluate_rerankers,
    retrieve_candidates,
)
from ragtune.engine.reranker.negatives import NegativesResult, collect_negatives
from ragtune.engine.stages import plan as stage_plan
from ragtune.engine.training.arguments import (
    common_arguments,
    reset_stale_checkpoints,
    train_resuming,
)
from ragtune.engine.training.callbacks import EventsCallback
from ragtune.engine.training.checkpointing import enable_checkpointing

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

# Saved beside the reranker weights: how ``ask`` combines its score with the retriever's.
SETTINGS_FILE = "ragtune_reranker.json"
EVAL_NAME = "heldout"


def has_classifier_head(name: str, *, trust_remote_code: bool = False) -> bool:
    """A reranker checkpoint (1-label sequence classifier) rather than a plain encoder."""
    from transformers import AutoConfig

    try:
        resolved = resolve_model(name)
        config = AutoConfig.from_pretrained(
            resolved, trust_remote_code=trust_remote_code, **hub_kwargs(resolved)
        )
    except OSError as exc:
        # Unreachable is not "no head": skipping the reranker for it would be recorded as done.
        if is_network_error(exc) or not hub_reachable():
            raise OfflineError(
                f"could not check the reranker base {name!r}: {str(exc).splitlines()[0]}",
                hint="use a local folder for reranker.base_model, or download it first",
            ) from None
        return False
    except ValueError:
        return False
    archs = getattr(config, "architectures", None) or []
    return any("ForSequenceClassification" in a for a in archs) and config.num_labels == 1


def load_reranker_base(
    name: str,
    *,
    max_length: int,
    device: str | None = None,
    seed: int = 42,
    trust_remote_code: bool = False,
) -> tuple[CrossEncoder, bool]:
    """The base cross-encoder and whether its head is fresh; seeded so a fresh head is the same
    head every time (the base row of the table must be reproducible)."""
    import torch

    fresh = not has_classifier_head(name, trust_remote_code=trust_remote_code)
    torch.manual_seed(seed)
    model = load_cross_encoder(
        name,
        device=device,
        num_labels=1,
        max_length=max_length,
        trust_remote_code=trust_remote_code,
    )
    return model, fresh


def untrainable_reason(rc: RerankerConfig, train_queries: int) -> str:
    """Why training a reranker here would waste the time, or "" to go ahead.

    A fresh classification head learns to rerank from hundreds of thousands of labelled
    queries (MS MARCO scale); from a few hundred pseudo-queries it stays far below the
    retriever (bundled example: 0.110 vs 0.837 ndcg@10), so such a run is not started.
    """
    if rc.min_queries_fresh_head == 0 or train_queries >= rc.min_queries_fresh_head:
        return ""
    if has_classifier_head(rc.base_model, trust_remote_code=rc.trust_remote_code):
        return ""
    return (
        f"{rc.base_model} has no trained reranking head, and {train_queries} training "
        f"queries are far too few to learn one (reranker.min_queries_fresh_head = "
        f"{rc.min_queries_fresh_head})"
    )


def _not_trained(ws: Workspace, rc: RerankerConfig, reason: str, events: Emitter) -> dict[str, Any]:
    hint = (
        "use a trained reranker as reranker.base_model (e.g. cross-encoder/ms-marco-MiniLM-L6-v2 "
        "or a local copy), or set reranker.min_queries_fresh_head = 0 to train anyway"
    )
    events.warning(f"reranker not trained: {reason}", hint=hint)
    if is_main_process() and ws.reranker_dir.exists():
        shutil.rmtree(ws.reranker_dir)
    summary = RerankSummary(trained=False, reason=reason, base_model=rc.base_model).to_dict()
    if is_main_process():
        MetricsFile(ws.metrics_path).write("reranker", summary)
    summary["report"] = "\n".join(
        [
            "## Reranker",
            "",
            f"Not trained: {reason}. Search uses the retriever alone.",
            "",
            f"To get one: {hint}.",
            "",
        ]
    )
    return summary


def embedder_source(cfg: RunConfig, ws: Workspace) -> str:
    """The fine-tuned embedder when the training stage has saved one, else the base model."""
    if (ws.embedder_dir / "modules.json").exists() or (ws.embedder_dir / "config.json").exists():
        return str(ws.embedder_dir)
    return cfg.embedder.base_model


def reranking_samples(cands: Candidates, corpus: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "query": q,
            "positive": [corpus[d] for d in rel if d in corpus],
            "documents": [corpus[d] for d in ids],
        }
        for q, ids, rel in zip(cands.queries, cands.ids, cands.relevant, strict=True)
    ]


def build_loss(model: CrossEncoder, rc: RerankerConfig, negatives: NegativesResult) -> Any:
    import torch
    from sentence_transformers.cross_encoder import losses

    if rc.loss == "lambda":
        return losses.LambdaLoss(model, mini_batch_size=rc.mini_batch_size)
    if rc.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model, num_negatives=max(1, rc.num_negatives))
    return losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(negatives.pos_weight))


def training_data(rc: RerankerConfig, negatives: NegativesResult) -> Any:
    if rc.loss == "lambda":
        return negatives.lists()
    if rc.loss == "mnrl":
        return negatives.tuples()
    return negatives.pairs(seed=rc.seed)


def train_reranker(
    model: CrossEncoder,
    rc: RerankerConfig,
    negatives: NegativesResult,
    output_dir: Path,
    *,
    evaluator: Any | None,
    device: str,
    events: Emitter,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """CrossEncoderTrainer with checkpoints in ``output_dir``; resumes its last checkpoint."""
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )

    train = training_data(rc, negatives)
    strategy = rc.eval_strategy if evaluator is not None else "no"
    metric = f"eval_{EVAL_NAME}_ndcg@10"
    args = CrossEncoderTrainingArguments(
        **common_arguments(rc, output_dir, device, eval_strategy=strategy, metric=metric),
        logging_steps=max(1, min(50, len(train) // max(1, rc.batch_size) // 4 or 1)),
        dataloader_drop_last=False,
    )
    callback = EventsCallback(events, model="reranker", cancel=cancel)
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=train,
        loss=build_loss(model, rc, negatives),
        evaluator=evaluator,
        callbacks=[callback],
    )
    started = time.monotonic()
    resume = train_resuming(trainer, output_dir, events, "reranker training")
    if callback.cancelled:
        raise Cancelled("reranker training stopped; the last checkpoint is kept for a resume")
    state = trainer.state
    return {
        "train_rows": len(train),
        "steps": state.global_step,
        "seconds": round(time.monotonic() - started, 1),
        "best_metric": state.best_metric,
        "best_checkpoint": Path(state.best_model_checkpoint).name
        if state.best_model_checkpoint
        else None,
        "resumed_from": Path(resume).name if resume else None,
    }


def model_card(
    rc: RerankerConfig,
    *,
    fresh_head: bool,
    embedder: str,
    negatives: NegativesResult,
    report: RerankReport | None,
    training: dict[str, Any],
) -> str:
    recipe = "\n".join(f"- {k}: {v}" for k, v in negatives.recipe.items())
    counts = "\n".join(f"- {k}: {v}" for k, v in negatives.counts.items())
    head = "an encoder with a fresh 1-label head" if fresh_head else "a reranker checkpoint"
    weight = report.weight if report is not None else rc.fusion_weight
    parts = [
        "# ragtune reranker",
        "",
        f"Cross-encoder fine-tuned from `{rc.base_model}` ({head}) with loss `{rc.loss}` on "
        "queries generated from the team's own documents. It reorders the top "
        f"{rc.top_k} passages of the retriever `{embedder}`.",
        "",
        "## Use",
        "",
        "```python",
        "from sentence_transformers import CrossEncoder",
        'model = CrossEncoder("PATH")',
        'scores = model.predict([("query", "passage"), ...])',
        "```",
        "",
        f"ragtune combines its score with the retriever's: `w * minmax(reranker) + (1 - w) * "
        f"minmax(retriever)` per query, with w = {weight} (see `{SETTINGS_FILE}`).",
        "",
        "## Negatives",
        "",
        recipe,
        "",
        "Counts:",
        "",
        counts,
        "",
        "## Training",
        "",
        "\n".join(f"- {k}: {v}" for k, v in training.items()),
        "",
    ]
    if report is not None:
        parts += ["## Evaluation", "", report.markdown()]
    return "\n".join(parts)


def _save_reranker(
    model: Any,
    ws: Workspace,
    rc: Any,
    fresh: bool,
    emb_name: str,
    weight: float,
    negatives: Any,
    report: Any,
    training: dict[str, Any],
) -> None:
    """Only rank 0 writes the model folder: under torchrun every rank reaches this point."""
    out = ws.reranker_dir
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp), create_model_card=False)
    settings = {
        "base_model": rc.base_model,
        "fresh_head": fresh,
        "embedder": emb_name,
        "fusion_weight": weight,
        "top_k": rc.top_k,
        "loss": rc.loss,
        "max_length": rc.max_length,
    }
    (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")
    (tmp / "README.md").write_text(
        model_card(
            rc,
            fresh_head=fresh,
            embedder=emb_name,
            negatives=negatives,
            report=report,
            training=training,
        ),
        encoding="utf-8",
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)


def mine_reranker_negatives(
    cfg: RunConfig,
    ws: Workspace,
    prepared: Any,
    embedder: Any,
    device: str,
    events: Emitter,
) -> NegativesResult:
    """Mined, LLM-written and random negatives for the training queries. One process does this
    for all: under torchrun the launcher runs it before the ranks start
    (``ragtune.engine.training.prework``), since ranks mining on their own could keep different
    negatives, run different step counts, and hang."""
    rc = cfg.reranker
    rescorer = load_cross_encoder(rc.rescore_model, device=device) if rc.rescore_model else None
    llm_rows = []
    if rc.llm_negatives and ws.generated_path.exists():
        from ragtune.engine.generate.rows import read_rows

        llm_rows = read_rows(ws.generated_path)
    return collect_negatives(
        prepared.train,
        prepared.corpus,
        rc,
        embedder=embedder,
        exclude_chunks=prepared.eval_chunks,
        llm_rows=llm_rows,
        cross_encoder=rescorer,
        events=events,
        batch_size=cfg.eval.encode_batch(device),
    )


def run_reranker_stage(
    cfg: RunConfig, ws: Workspace, events: Emitter, cancel: threading.Event | None = None
) -> dict[str, Any]:
    """Mining + training + evaluation; writes ``models/reranker`` and the "reranker" metrics.

    Returns a summary whose "report" is the markdown table for report.md.
    """
    rc = cfg.reranker
    device = pick_device(rc.device)
    prepared = load_prepared(ws)
    skip = untrainable_reason(rc, len(prepared.train))
    if skip:
        return _not_trained(ws, rc, skip, events)
    batch = cfg.eval.encode_batch(device)
    emb_name = embedder_source(cfg, ws)
    events.info(f"reranker: retrieving with {Path(emb_name).name}, base {rc.base_model}")
    embedder = attach_prompts(
        load_embedder(emb_name, device=device, trust_remote_code=cfg.embedder.trust_remote_code),
        cfg.embedder,
    )
    for_inference(embedder, rc.precision, device)

    from ragtune.engine.evaluate.saved import saved_unit_corpus

    # evaluate saved these passages' vectors by this model (same files, prompt and dtype)
    corpus_emb = saved_unit_corpus(ws, embedder, emb_name, prepared.corpus)
    if corpus_emb is not None:
        events.info("reranker: the retriever's passage vectors saved by evaluate are reused")
    cands = retrieve_candidates(
        embedder,
        prepared.eval_queries,
        prepared.corpus,
        prepared.eval_relevant,
        rc.top_k,
        batch_size=batch,
        corpus_emb=corpus_emb,
    )
    from ragtune.engine.training.prework import reranker_negatives

    negatives = reranker_negatives(cfg, ws, prepared, embedder, device, events)
    del embedder
    if cancel is not None and cancel.is_set():
        raise Cancelled()

    # A third of the held-out queries choose the checkpoint, a third the fusion weight, and
    # the last third, which no choice sees, decides whether the reranker ships.
    evaluator = None
    if cands.queries:
        from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

        tune = checkpoint_queries(cands)
        evaluator = CrossEncoderRerankingEvaluator(
            reranking_samples(tune, prepared.corpus),
            at_k=10,
            always_rerank_positives=True,
            name=EVAL_NAME,
            batch_size=batch,
            write_csv=False,
        )

    model, fresh = load_reranker_base(
        rc.base_model,
        max_length=rc.max_length,
        device=device,
        seed=rc.seed,
        trust_remote_code=rc.trust_remote_code,
    )
    if rc.gradient_checkpointing:
        enable_checkpointing(model, "reranker.gradient_checkpointing")
    ckpt_dir = ws.checkpoints_dir / "reranker"
    reset_stale_checkpoints(ckpt_dir, stage_plan(cfg, ws).fingerprint("rerank"))
    training = train_reranker(
        model,
        rc,
        negatives,
        ckpt_dir,
        evaluator=evaluator,
        device=device,
        events=events,
        cancel=cancel,
    )

    report: RerankReport | None = None
    if cands.queries:
        base, _ = load_reranker_base(
            rc.base_model,
            max_length=rc.max_length,
            device=device,
            seed=rc.seed,
            trust_remote_code=rc.trust_remote_code,
        )
        report = evaluate_rerankers(
            cands,
            prepared.corpus,
            model,
            base,
            weight=rc.fusion_weight if rc.fusion_weight >= 0 else None,
            batch_size=batch,
            base_label="base reranker (fresh head)" if fresh else "base reranker",
        )
        del base
        weight = report.weight
    else:
        weight = rc.fusion_weight if rc.fusion_weight >= 0 else 0.0
        events.warning(
            f"no held-out queries: the reranker cannot be measured, so search uses w={weight}",
            hint="set data.eval_fraction above 0 to measure it, or reranker.fusion_weight to "
            "use it unmeasured",
        )

    if is_main_process():
        _save_reranker(model, ws, rc, fresh, emb_name, weight, negatives, report, training)

    summary = RerankSummary(
        negatives=negatives.counts,
        pos_weight=round(negatives.pos_weight, 3),
        training=training,
        fusion_weight=weight,
        fresh_head=fresh,
        embedder=emb_name,
        base_model=rc.base_model,
        evaluation=report.to_dict() if report is not None else None,
    ).to_dict()
    if report is not None:
        for system, metrics in report.rows["retrieved top-k"].items():
            events.emit(EvalRow(model=system, dim=0, metrics=metrics))
        # The decision itself, made on the split no choice saw, not a second verdict
        # recomputed on all held-out queries (which could contradict it).
        if weight > 0:
            events.info(f"reranker shipped: {report.decision}")
        else:
            events.warning(
                f"reranker not used by search: {report.decision}",
                hint="more or better training queries, a reranker checkpoint as "
                "reranker.base_model, or more epochs may help",
            )
    if is_main_process():
        MetricsFile(ws.metrics_path).write("reranker", summary)
    negs = negatives.counts
    lines = [
        "## Reranker",
        "",
        f"Base `{rc.base_model}`"
        + (" (fresh head)" if fresh else "")
        + f", loss `{rc.loss}`, {training['train_rows']} training rows, "
        f"{training['steps']} steps. Negatives: {negs['mined']} mined, "
        f"{negs['llm_passage'] + negs['llm_query']} from the LLM, {negs['random']} random "
        f"for {negs['queries']} queries (pos_weight {negatives.pos_weight:.2f}).",
        "",
    ]
    if report is not None:
        lines.append(report.markdown())
    summary["report"] = "\n".join(lines)
    return summary
