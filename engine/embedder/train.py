"""Bi-encoder fine-tuning at every Matryoshka size, via SentenceTransformerTrainer."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.config import RunConfig
from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.core.dist import world_size
from ragtune.engine.core.errors import Cancelled, ConfigError, RagtuneError
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.models import (
    attention_dropout_kwargs,
    derive_dims,
    load_embedder,
    pick_device,
    precision_flags,
)
from ragtune.engine.core.payloads import TrainSummary
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.data.prepare import Prepared, load_prepared
from ragtune.engine.stages import plan as stage_plan
from ragtune.engine.training.arguments import (
    common_arguments,
    reset_stale_checkpoints,
    train_resuming,
)
from ragtune.engine.training.callbacks import EventsCallback
from ragtune.engine.training.checkpointing import enable_checkpointing
from ragtune.engine.training.prework import embedder_rows

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def embedding_dim(model: SentenceTransformer) -> int:
    getter = (
        getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    )
    return int(getter() or 0)


def model_dims(model: SentenceTransformer, cfg: EmbedderConfig) -> list[int]:
    full = embedding_dim(model)
    dims = list(cfg.matryoshka_dims) or derive_dims(full)
    if dims[0] > full:
        raise ConfigError(
            "embedder.matryoshka_dims", dims, f"sizes no larger than the model's {full}"
        )
    return dims


def column_prompts(model: SentenceTransformer, cfg: EmbedderConfig) -> dict[str, str]:
    """Prompts per dataset column, from the config or the model's own query/document prompts."""
    prompts = getattr(model, "prompts", {}) or {}
    query = cfg.query_prompt or prompts.get("query") or ""
    document = cfg.document_prompt or prompts.get("document") or prompts.get("passage") or ""
    out = {}
    if query:
        out["anchor"] = query
    if document:
        out["positive"] = document
        out["negative"] = document
    return out


def prompts_for_columns(prompts: dict[str, str], columns: list[str]) -> dict[str, str]:
    """The trainer's per-column prompts: the query prompt on the anchor, the document
    prompt on every passage column (positive, negative, negative_1..n)."""
    out = {}
    for column in columns:
        key = "anchor" if column == "anchor" else "positive"
        if column != "label" and key in prompts:
            out[column] = prompts[key]
    return out


def attach_prompts(model: SentenceTransformer, cfg: EmbedderConfig) -> SentenceTransformer:
    """Put the configured query/document prompts into the model's own ``prompts``, so
    ``encode_query``/``encode_document`` apply them everywhere (mining, reranker candidates,
    ask) and the saved model carries them: no train/serve skew."""
    prompts = column_prompts(model, cfg)
    if "anchor" in prompts:
        model.prompts["query"] = prompts["anchor"]
    if "positive" in prompts:
        model.prompts["document"] = prompts["positive"]
    return model


def check_best_metric(metric: str, dims: list[int]) -> None:
    """Fail before training, not after the first epoch, when the metric names a size that is
    not evaluated."""
    from ragtune.engine.evaluate.keys import TRAINER_PREFIX, metric_key, parse_metric_key

    parsed = parse_metric_key(metric, TRAINER_PREFIX)
    if parsed and parsed[0] not in dims:
        example = metric_key(dims[-1], "ndcg@10", TRAINER_PREFIX)
        raise ConfigError(
            "embedder.metric_for_best_model",
            metric,
            f"a metric at one of the trained sizes {dims}, e.g. {example}",
        )


def build_loss(model: SentenceTransformer, cfg: EmbedderConfig, dims: list[int]) -> Any:
    from ragtune.engine.embedder.losses import LOSSES

    return LOSSES[cfg.loss](model, cfg, dims, world_size() > 1)


def _hf_model(model: SentenceTransformer) -> Any:
    return model[0].auto_model


def apply_lora(model: SentenceTransformer, cfg: EmbedderConfig) -> None:
    """LoRA layers injected by peft itself: transformers' ``add_adapter`` route demands a newer
    peft than PyPI serves alongside transformers 5.24, and either way the merge is ours."""
    from peft import LoraConfig, TaskType, inject_adapter_in_model

    config = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target_modules or None,
        inference_mode=False,
    )
    hf = _hf_model(model)
    if config.target_modules is None:
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as targets

        known = targets.get(hf.config.model_type)
        if known is None:
            raise ConfigError(
                "embedder.lora_target_modules",
                [],
                f"the linear layers to adapt in a {hf.config.model_type!r} model, "
                'e.g. ["query", "value"]',
            )
        config.target_modules = set(known)
    inject_adapter_in_model(config, hf)
    for name, param in hf.named_parameters():
        param.requires_grad_("lora_" in name)


def merge_lora(model: SentenceTransformer) -> SentenceTransformer:
    """Fold every adapter into its base weight and put the plain layer back, so the saved
    model is an ordinary checkpoint that loads without peft."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    hf = _hf_model(model)
    for parent in list(hf.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                child.merge(safe_merge=True)
                setattr(parent, name, child.get_base_layer())
    hf.__dict__.pop("peft_config", None)
    if hasattr(hf, "_hf_peft_config_loaded"):
        hf._hf_peft_config_loaded = False
    for param in hf.parameters():
        param.requires_grad_(True)
    return model


def freeze_unused_pooler(model: SentenceTransformer) -> None:
    """The encoder's own pooler (BERT, RoBERTa, MPNet) never feeds a sentence-transformers
    embedding; under DDP without unused-parameter search, weights with no gradient fail the
    first backward (sentence-transformers #1454)."""
    for name, param in model.named_parameters():
        if ".pooler." in name:
            param.requires_grad_(False)


def soup(model: SentenceTransformer, base: SentenceTransformer, alpha: float) -> None:
    """Weight-space interpolation with the base model (WiSE-FT): keeps general skill, keeps gains."""
    import torch

    base_state = base.state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            other = base_state.get(name)
            if other is not None and tensor.dtype.is_floating_point and other.shape == tensor.shape:
                tensor.copy_(alpha * tensor + (1.0 - alpha) * other.to(tensor.device, tensor.dtype))


# ms-marco cross-encoders spread their margins over several logits; a fresh head, ~0.
WEAK_MARGIN_STD = 0.5


def training_rows(
    cfg: RunConfig, prepared: Prepared, model: SentenceTransformer, events: Emitter
) -> tuple[Any, dict[str, Any]]:
    """The rows the loss reads: (anchor, positive), plus mined negatives when asked for, plus
    the cross-encoder's margins for gpl. Mining and labelling run once, on rank 0."""
    ecfg = cfg.embedder
    if ecfg.loss == "hybrid_distill":
        return hybrid_rows(cfg, prepared, model, events)
    if ecfg.hard_negatives < 1:
        return prepared.train.select_columns(["anchor", "positive"]), {}
    from ragtune.engine.core.dist import broadcast_from_main, is_main_process
    from ragtune.engine.embedder.negatives import mined_groups, negative_columns, pseudo_labelled

    summary: dict[str, Any] = {}
    rows = None
    if is_main_process():
        cross_encoder = None
        if ecfg.loss == "gpl":
            from ragtune.engine.core.models import load_cross_encoder

            # Loaded first: a cross-encoder this machine cannot get fails before mining.
            try:
                cross_encoder = load_cross_encoder(
                    ecfg.pseudo_label_model, device=str(model.device)
                )
            except RagtuneError as exc:
                exc.where = exc.where or "embedder.pseudo_label_model"
                exc.hint += "; or set embedder.pseudo_label_model to a trained cross-encoder here"
                raise
        groups, counts = mined_groups(
            prepared.train,
            prepared.corpus,
            model,
            ecfg,
            exclude_chunks=prepared.eval_chunks,
            events=events,
            batch_size=cfg.eval.encode_batch(str(model.device)),
        )
        summary["negatives"] = counts
        if cross_encoder is not None:
            events.info(f"pseudo-labelling with {ecfg.pseudo_label_model}")
            rows, labels = pseudo_labelled(groups, cross_encoder)
            summary["pseudo_labels"] = labels
            events.info(
                f"pseudo-labels: {labels['rows']} margins, mean {labels['mean_margin']:.2f}, "
                f"{labels['negative_preferred']} where the cross-encoder prefers the mined negative"
            )
            if labels["margin_std"] < WEAK_MARGIN_STD:
                events.warning(
                    f"the cross-encoder barely tells positives from mined negatives (margin "
                    f"spread {labels['margin_std']:.2f} logits): its labels will undo training",
                    where="embedder.pseudo_label_model",
                    hint="use a trained cross-encoder, e.g. cross-encoder/ms-marco-MiniLM-L6-v2; "
                    "an encoder with a fresh head is not one",
                )
            del cross_encoder
        else:
            rows = negative_columns(groups)
    rows, summary = broadcast_from_main((rows, summary))
    return rows, summary


def hybrid_rows(
    cfg: RunConfig, prepared: Prepared, model: SentenceTransformer, events: Emitter
) -> tuple[Any, dict[str, Any]]:
    """Rows for ``hybrid_distill``, built once on rank 0 (as mining is) from the pool without
    the held-out chunks, with ``model`` still holding the base weights."""
    from ragtune.engine.core.dist import broadcast_from_main, is_main_process
    from ragtune.engine.embedder.hybrid_teacher import HybridTeacher, hybrid_teacher_rows

    ecfg = cfg.embedder
    rows, summary = None, {}
    if is_main_process():
        pool = {c: t for c, t in prepared.corpus.items() if c not in prepared.eval_chunks}
        events.info(
            f"hybrid teacher: BM25 fused with the base model (BM25 weight "
            f"{ecfg.teacher_bm25_weight}) ranks {len(pool)} passages for each training query"
        )
        try:
            rows, found = hybrid_teacher_rows(
                prepared.train,
                pool,
                model,
                HybridTeacher(ecfg.teacher_candidates, ecfg.teacher_bm25_weight),
                column_prompts(model, ecfg),
                batch_size=cfg.eval.encode_batch(str(model.device)),
            )
        except ValueError as exc:
            raise ConfigError(
                "embedder.teacher_candidates",
                ecfg.teacher_candidates,
                f"fewer candidates ({exc})",
            ) from exc
        summary = {"hybrid_teacher": found}
        events.info(
            f"hybrid teacher: {found['candidates']} candidates for {found['queries']} queries; "
            f"the fused ranking puts the query's own chunk first for "
            f"{found['own_chunk_first']:.0%} of them"
        )
    return broadcast_from_main((rows, summary))


def with_teacher_embeddings(
    cfg: RunConfig,
    ws: Workspace,
    rows: Any,
    model: SentenceTransformer,
    prompts: dict[str, str],
    events: Emitter,
) -> Any:
    """The rows with the base model's embeddings as their label column, for ``distill``.

    ``model`` must still hold the base weights (called before any training step): it is the
    teacher, so no second copy is loaded. In one process the embeddings an earlier training
    of this workspace saved are read when their fingerprint matches, and saved otherwise.
    Under torchrun each rank encodes its own share of the rows and the ranks exchange them,
    so no rank waits on another's work (and none reads a file the others may not see); a
    stage that ran before the ranks started may have added the column already.
    """
    from ragtune.engine.core.dist import rank
    from ragtune.engine.embedder.teacher import (
        TEACHER_COLUMN,
        save_teacher,
        saved_teacher,
        teacher_embeddings,
        teacher_fingerprint,
        text_columns,
        with_column,
    )
    from ragtune.engine.evaluate.saved import FOLDER

    if TEACHER_COLUMN in rows.column_names:
        return rows
    flags = precision_flags(cfg.embedder.precision, str(model.device))
    dtype = None
    if flags.get("bf16") or flags.get("fp16"):
        import torch

        dtype = torch.bfloat16 if flags.get("bf16") else torch.float16
    column_prompts_ = prompts_for_columns(prompts, rows.column_names)
    world = world_size()
    folder = ws.root / FOLDER
    fp = ""
    if world == 1:
        fp = teacher_fingerprint(
            model,
            cfg.embedder.base_model,
            rows,
            column_prompts_,
            autocast_dtype=dtype,
            attention_dropout=cfg.embedder.attention_dropout,
        )
        saved = saved_teacher(folder, fp, (len(rows), len(text_columns(rows))))
        if saved is not None:
            events.info(
                f"distill teacher: the base model's embeddings of these {len(rows)} training "
                f"rows, saved by an earlier training ({FOLDER}/), are reused"
            )
            return with_column(rows, saved)
    events.info(f"encoding {len(rows)} training rows once with the base model (distill teacher)")
    mine = teacher_embeddings(
        model,
        rows if world == 1 else rows.shard(world, rank(), contiguous=True),
        column_prompts_,
        batch_size=cfg.eval.encode_batch(str(model.device)),
        autocast_dtype=dtype,
    )
    if world == 1:
        save_teacher(folder, fp, mine)
        return with_column(rows, mine)
    import numpy as np
    import torch.distributed as dist

    shares: list[Any] = [None] * world
    dist.all_gather_object(shares, mine)
    return with_column(rows, np.concatenate(shares))


def fit_corpus_rotation(
    cfg: RunConfig, model: SentenceTransformer, corpus: dict[str, str], document_prompt: str | None
) -> Any:
    """Append the corpus rotation to the trained model; return the rotated model's embeddings
    of every passage (sorted-id order), which the evaluate stage would otherwise encode again.

    Every passage is encoded, not only the rotation's sample: the fit and the held-out suite
    then share one encode (the rotated model's output is these embeddings times the rotation).
    """
    import torch

    from ragtune.engine.embedder.rotation import append_rotation, rotation_for_corpus
    from ragtune.engine.evaluate.ir import encode_documents

    ids = sorted(corpus)
    emb = encode_documents(
        model,
        [corpus[i] for i in ids],
        prompt=document_prompt,
        batch_size=cfg.eval.encode_batch(str(model.device)),
    )
    rotation = rotation_for_corpus(list(corpus), emb, cfg.embedder.seed)
    append_rotation(model, rotation)
    return (emb @ torch.from_numpy(rotation).to(emb.device, emb.dtype).T).cpu().numpy()


def training_arguments(
    cfg: EmbedderConfig, output_dir: Path, device: str, has_eval: bool, prompts: dict[str, str]
) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    eval_strategy = cfg.eval_strategy if has_eval else "no"
    return SentenceTransformerTrainingArguments(
        **common_arguments(
            cfg, output_dir, device, eval_strategy=eval_strategy, metric=cfg.metric_for_best_model
        ),
        lr_scheduler_type=cfg.scheduler,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        logging_steps=max(1, cfg.eval_steps // 10) if cfg.eval_steps else 5,
        logging_first_step=True,
        prompts=prompts or None,
        dataloader_drop_last=world_size() > 1,
        ddp_find_unused_parameters=False if world_size() > 1 else None,
    )


def train_embedder(
    cfg: RunConfig,
    ws: Workspace,
    events: Emitter,
    cancel: threading.Event | None = None,
    prepared: Prepared | None = None,
) -> dict[str, Any]:
    """Train, keep the best checkpoint, optionally soup with the base, save to ``models/embedder``.

    A run stopped mid-way resumes from its last checkpoint in ``checkpoints/embedder``.
    """
    from sentence_transformers import SentenceTransformerTrainer

    from ragtune.engine.evaluate.ir import MatryoshkaIREvaluator

    ecfg = cfg.embedder
    prepared = prepared or load_prepared(ws)
    device = pick_device(ecfg.device)
    model = load_embedder(
        ecfg.base_model,
        device=device,
        trust_remote_code=ecfg.trust_remote_code,
        **attention_dropout_kwargs(
            ecfg.base_model, ecfg.attention_dropout, trust_remote_code=ecfg.trust_remote_code
        ),
    )
    own_max_length = model.max_seq_length
    if ecfg.max_seq_length:
        model.max_seq_length = ecfg.max_seq_length
    dims = model_dims(model, ecfg)
    check_best_metric(ecfg.metric_for_best_model, dims)
    prompts = column_prompts(model, ecfg)
    train, data_summary = embedder_rows(cfg, ws, prepared, model, events)
    if ecfg.loss == "distill":
        train = with_teacher_embeddings(cfg, ws, train, model, prompts, events)
    if ecfg.lora:
        apply_lora(model, ecfg)
    freeze_unused_pooler(model)
    if ecfg.gradient_checkpointing:
        enable_checkpointing(model, "embedder.gradient_checkpointing")

    has_eval = bool(prepared.eval_queries)
    evaluator = None
    if has_eval:
        evaluator = MatryoshkaIREvaluator(
            prepared.ir_data(),
            dims,
            batch_size=cfg.eval.encode_batch(str(model.device)),
            query_prompt=prompts.get("anchor"),
            document_prompt=prompts.get("positive"),
        )
    out_dir = ws.checkpoints_dir / "embedder"
    reset_stale_checkpoints(out_dir, stage_plan(cfg, ws).fingerprint("train"))
    args = training_arguments(
        ecfg, out_dir, device, has_eval, prompts_for_columns(prompts, train.column_names)
    )
    callback = EventsCallback(events, model="embedder", cancel=cancel)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train,
        loss=build_loss(model, ecfg, dims),
        evaluator=evaluator,
        callbacks=[callback],
    )
    train_resuming(trainer, out_dir, events, "training")
    if callback.cancelled:
        raise Cancelled(
            "training stopped; the last checkpoint is kept and `ragtune run` resumes it"
        )

    model.max_seq_length = own_max_length
    if ecfg.lora:
        model = merge_lora(model)
    if ecfg.soup_alpha < 1.0:
        base = load_embedder(
            ecfg.base_model, device=str(model.device), trust_remote_code=ecfg.trust_remote_code
        )
        soup(model, base, ecfg.soup_alpha)
    rotated = None
    if ecfg.corpus_rotation:
        events.info("fitting the corpus rotation for truncated sizes")
        rotated = fit_corpus_rotation(cfg, model, prepared.corpus, prompts.get("positive"))
    attach_prompts(model, ecfg)
    if trainer.is_world_process_zero():
        model.save(str(ws.embedder_dir))
        if rotated is not None:
            from ragtune.engine.evaluate.saved import save_corpus

            save_corpus(
                ws,
                "tuned",
                model,
                str(ws.embedder_dir),
                prepared.corpus,
                rotated,
                prompts.get("positive"),
            )
    state = trainer.state
    mined = TrainSummary.from_dict(data_summary)
    return TrainSummary(
        dims=dims,
        train_pairs=len(train),
        negatives=mined.negatives,
        pseudo_labels=mined.pseudo_labels,
        hybrid_teacher=mined.hybrid_teacher,
        steps=state.global_step,
        best_metric=state.best_metric,
        best_checkpoint=Path(state.best_model_checkpoint).name
        if state.best_model_checkpoint
        else None,
        device=device,
        precision=next(
            (k for k, v in precision_flags(ecfg.precision, device).items() if v), "fp32"
        ),
    ).to_dict()
