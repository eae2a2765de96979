"""Bi-encoder (embedding model) training settings."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.core.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class LossChoice:
    """An embedder loss a run can pick. It is built by ``ragtune.engine.embedder.losses.LOSSES``'s
    builder of the same name (config sits below the stage packages; a test ties the two)."""

    name: str
    help: str
    """What it is, for the ``loss`` setting's help."""
    label: str
    """A few words for the wizard's training view."""
    settings: tuple[str, ...] = ()
    """Embedder settings only this loss reads (shown as unused under any other loss)."""
    card: str = ""
    """How the model card names the recipe; its settings are listed after it."""
    in_batch_negatives: bool = True
    """The batch's other passages are the negatives, so the batch size is part of the recipe:
    halving it with gradient accumulation would not keep what the loss learns from."""
    guide_model: bool = False
    """A second, frozen model sits in memory beside the student while it trains."""


LOSSES: dict[str, LossChoice] = {
    c.name: c
    for c in (
        LossChoice(
            "mnrl",
            "MultipleNegativesRankingLoss",
            "MultipleNegativesRankingLoss",
            card="MultipleNegativesRankingLoss inside MatryoshkaLoss",
        ),
        LossChoice(
            "cached_mnrl",
            "GradCache variant for big batches",
            "cached MultipleNegativesRankingLoss",
            ("mini_batch_size",),
            card="CachedMultipleNegativesRankingLoss (GradCache) inside MatryoshkaLoss",
        ),
        LossChoice(
            "gist",
            "GISTEmbedLoss guided by the base model",
            "GISTEmbedLoss guided by the base model",
            card="GISTEmbedLoss guided by the frozen base model, inside MatryoshkaLoss",
            guide_model=True,
        ),
        LossChoice(
            "distill",
            "MNRL plus self-distillation towards the frozen base model at every Matryoshka size",
            "contrastive cross-entropy + KL to the frozen base model",
            card="ragtune's distill loss (in-batch contrastive plus KL towards the frozen base "
            "model, whose embeddings are computed once before training, at every Matryoshka size)",
        ),
        LossChoice(
            "hybrid_distill",
            "distill plus a listwise KL term towards BM25 fused with the base model, over each "
            "query's top fused candidates (no LLM, no labels; SPAR, Chen et al. 2022; Tamber et "
            "al. 2025)",
            "contrastive + KL to the base model + listwise KL to BM25 fused with the base",
            ("teacher_candidates", "teacher_bm25_weight", "listwise_weight"),
            card="ragtune's hybrid_distill loss (the distill loss plus a listwise KL term towards "
            "BM25 fused with the base model over each query's top fused candidates, at every "
            "Matryoshka size)",
        ),
        LossChoice(
            "gpl",
            "MarginMSE on a cross-encoder's scores of (query, positive, mined negative), as in "
            "GPL (Wang et al. 2022)",
            "MarginMSE to the cross-encoder's margins",
            ("pseudo_label_model", "gpl_contrastive_weight", "gpl_score_scale"),
            card="GPL: MarginMSE on a cross-encoder's score margins, computed once before "
            "training (Wang et al. 2022), plus gpl_contrastive_weight x in-batch contrastive",
            in_batch_negatives=False,
        ),
    )
}


@dataclass
class EmbedderConfig(Section):
    base_model: str = setting(
        "nomic-ai/modernbert-embed-base",
        help="sentence-transformers or transformers encoder, by Hub name or local path",
    )
    trust_remote_code: bool = setting(
        False,
        help="run the model repository's own code (needed by e.g. nomic-embed-text-v1.5, gte, jina); only for repositories you trust",
    )
    matryoshka_dims: list[int] = setting(
        default_factory=list,
        help="embedding sizes trained and evaluated; empty = derived from the model (e.g. 768/512/256/128/64)",
        minimum=8,
    )
    loss: str = setting(
        "distill",
        help="; ".join(f"{c.name} = {c.help}" for c in LOSSES.values()),
        choices=tuple(LOSSES),
    )
    teacher_candidates: int = setting(
        3,
        help="with loss = hybrid_distill: candidates per training query from the fused BM25 + base ranking (its own chunk excluded); each is encoded at every step",
        minimum=1,
        maximum=63,
    )
    teacher_bm25_weight: float = setting(
        0.3,
        help="with loss = hybrid_distill: BM25's weight in the teacher's z-score fusion with the base model (0 = the base model alone)",
        minimum=0.0,
        maximum=1.0,
    )
    listwise_weight: float = setting(
        1.0,
        help="with loss = hybrid_distill: weight of the listwise KL term towards the fused teacher, beside distill's terms",
        minimum=0.0,
    )
    hard_negatives: int = setting(
        0,
        help="negatives mined per query with the base model and added to each training row (0 = in-batch negatives only; gpl needs at least 1)",
        minimum=0,
    )
    negative_range_min: int = setting(
        10,
        help="mined negatives skip this many top-ranked passages (many are unlabelled positives)",
        minimum=0,
    )
    negative_range_max: int = setting(
        200, help="mined negatives are drawn at random from ranks up to this one", minimum=1
    )
    pseudo_label_model: str = setting(
        "cross-encoder/ms-marco-MiniLM-L6-v2",
        help="with loss = gpl: the trained cross-encoder (Hub name or local path) whose score margins are the labels",
    )
    gpl_contrastive_weight: float = setting(
        0.0,
        help="with loss = gpl: weight of an in-batch contrastive term added to MarginMSE (0 = MarginMSE alone, as in the paper)",
        minimum=0.0,
    )
    gpl_score_scale: float = setting(
        20.0,
        help="with loss = gpl: the embedder's cosine margins are multiplied by this to compare with the cross-encoder's logit margins",
        minimum=0.01,
    )
    batch_size: int = setting(
        32, help="per-device batch (in-batch negatives grow with it)", minimum=2
    )
    mini_batch_size: int = setting(
        16, help="forward chunk size for cached_mnrl; lower it on out-of-memory", minimum=1
    )
    gradient_accumulation_steps: int = setting(1, help="not useful with in-batch losses", minimum=1)
    learning_rate: float = setting(2e-5, help="peak learning rate", minimum=0.0, maximum=1.0)
    epochs: float = setting(1.0, help="passes over the training pairs", minimum=0.01)
    warmup_ratio: float = setting(0.1, help="share of steps warming up", minimum=0.0, maximum=0.9)
    scheduler: str = setting(
        "cosine",
        help="learning-rate schedule",
        choices=("cosine", "linear", "constant_with_warmup"),
    )
    weight_decay: float = setting(0.01, help="AdamW weight decay", minimum=0.0)
    precision: str = setting(
        "auto",
        help="auto = bf16 where the GPU supports it, else fp16 on GPU, fp32 on CPU",
        choices=PRECISIONS,
    )
    max_seq_length: int = setting(
        0,
        help="truncate training inputs to this many tokens (0 = the model's limit); shorter trains faster, the saved model keeps its own limit",
        minimum=0,
    )
    attention_dropout: float = setting(
        0.0,
        help="dropout on the attention probabilities while training; -1 = as the model ships (0.1 for BERT-style models such as MiniLM). 0 (the default) lets PyTorch use its fused attention, which on CPU keeps no per-head attention matrices: about 1.6 GiB less at batch 32 x 228 tokens, with no loss measured on medline or cisi (bench/README.md); the saved model's config records the value used",
        minimum=-1.0,
        maximum=0.9,
        before=-1.0,
    )
    soup_alpha: float = setting(
        1.0,
        help="final weights = alpha * tuned + (1 - alpha) * base; below 1 keeps more of the base model",
        minimum=0.0,
        maximum=1.0,
    )
    corpus_rotation: bool = setting(
        True,
        help="append an orthogonal rotation fitted on your chunks so truncated (Matryoshka) sizes keep what separates them; full-size scores are unchanged",
    )
    lora: bool = setting(False, help="train LoRA adapters (peft) instead of all weights")
    lora_r: int = setting(16, minimum=1)
    lora_alpha: int = setting(32, minimum=1)
    lora_dropout: float = setting(0.1, minimum=0.0, maximum=0.9)
    lora_target_modules: list[str] = setting(
        default_factory=list,
        help="linear layers LoRA adapts; empty picks peft's usual ones for the model family",
    )
    metric_for_best_model: str = setting(
        "eval_dim_128_cosine_ndcg@10", help="evaluator key that picks the best checkpoint"
    )
    load_best_model_at_end: bool = setting(
        True, help="keep the checkpoint with the best held-out metric, not the last one"
    )
    eval_strategy: str = setting("epoch", choices=("epoch", "steps", "no"))
    eval_steps: int = setting(0, help="with eval_strategy = steps", minimum=0)
    save_total_limit: int = setting(2, minimum=1, fingerprint=False)
    gradient_checkpointing: bool = setting(
        False,
        help="recompute activations in the backward pass: slower steps, far less memory "
        "(long inputs, large batches)",
        fingerprint=False,
    )
    query_prompt: str = setting(
        "", help="text put before queries, e.g. 'search_query: '; empty = the model's own prompts"
    )
    document_prompt: str = setting("", help="text put before passages, e.g. 'search_document: '")
    seed: int = setting(42, help="seed for the new weights, shuffling and dropout")
    device: str = setting("auto", help="auto, cpu, cuda, cuda:1, mps", fingerprint=False)

    def inactive(self) -> set[str]:
        out = {s for c in LOSSES.values() if c.name != self.loss for s in c.settings}
        if self.hard_negatives == 0:
            out |= {"negative_range_min", "negative_range_max"}
        if not self.lora:
            out |= {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"}
        if self.eval_strategy != "steps":
            out.add("eval_steps")
        return out

    def check(self) -> None:
        if self.loss == "gpl" and self.hard_negatives < 1:
            raise ConfigError(
                "embedder.hard_negatives",
                self.hard_negatives,
                "at least 1 with loss = gpl: every pseudo-label is the margin between a positive and a mined negative",
            )
        if self.loss == "hybrid_distill" and self.hard_negatives > 0:
            raise ConfigError(
                "embedder.hard_negatives",
                self.hard_negatives,
                "0 with loss = hybrid_distill: its candidates from the fused ranking take the place of mined negatives (set embedder.teacher_candidates instead)",
            )
        if self.negative_range_max <= self.negative_range_min:
            raise ConfigError(
                "embedder.negative_range_max",
                self.negative_range_max,
                f"a rank above negative_range_min ({self.negative_range_min})",
            )
        if self.eval_strategy == "steps" and self.eval_steps <= 0:
            raise ConfigError(
                "embedder.eval_steps",
                self.eval_steps,
                "a positive number with eval_strategy = steps",
            )
        if sorted(self.matryoshka_dims, reverse=True) != list(self.matryoshka_dims):
            raise ConfigError(
                "embedder.matryoshka_dims", self.matryoshka_dims, "sizes in decreasing order"
            )
