"""Cross-encoder reranker settings: negatives recipe, training, and how its score is used."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.config.training import PRECISIONS
from ragtune.engine.core.errors import ConfigError


@dataclass
class RerankerConfig(Section):
    enabled: bool = setting(True, help="train and evaluate a reranker after the embedder")
    base_model: str = setting(
        "cross-encoder/ms-marco-MiniLM-L6-v2",
        help="a reranker checkpoint or an encoder (a fresh 1-label head is added)",
    )
    trust_remote_code: bool = setting(
        False, help="run the model repository's own code; only for repositories you trust"
    )
    min_queries_fresh_head: int = setting(
        20_000,
        help="with a base that has no trained reranking head, train only from this many "
        "training queries (fewer cannot teach a fresh head to beat the retriever); 0 = always",
        minimum=0,
    )
    loss: str = setting(
        "bce",
        help="bce = binary cross-entropy on (query, passage, label) pairs with pos_weight from the "
        "negatives ratio; lambda = listwise LambdaLoss; mnrl = in-batch multiple negatives ranking",
        choices=("bce", "lambda", "mnrl"),
    )
    num_negatives: int = setting(
        4, help="hard negatives mined per query with the embedder", minimum=0
    )
    random_negatives: int = setting(
        1, help="random negatives per query, so easy cases stay easy", minimum=0
    )
    llm_negatives: bool = setting(
        True, help="use the LLM-written negatives from generation when there are any"
    )
    range_min: int = setting(
        2, help="skip this many top mined candidates (likely false negatives)", minimum=0
    )
    range_max: int = setting(
        50, help="mine among this many top candidates (near the reranker's top_k)", minimum=1
    )
    sampling: str = setting(
        "random",
        help="pick mined negatives at random among the candidates, or the top ones",
        choices=("random", "top"),
    )
    margin: float = setting(
        0.0,
        help="a negative must score at least this much below the positive (negative value = off)",
    )
    max_score: float = setting(
        0.98, help="drop candidates scoring above this cosine (near duplicates of the positive)"
    )
    use_faiss: bool = setting(
        True, help="search with faiss when it is installed", fingerprint=False
    )
    rescore_model: str = setting(
        "",
        help="cross-encoder that rescores mined candidates to drop false negatives; empty = off",
    )
    batch_size: int = setting(16, minimum=1)
    gradient_accumulation_steps: int = setting(1, minimum=1)
    mini_batch_size: int = setting(
        16, help="forward chunk size for the lambda loss; lower it on out-of-memory", minimum=1
    )
    learning_rate: float = setting(2e-5, minimum=0.0, maximum=1.0)
    epochs: float = setting(1.0, minimum=0.01)
    warmup_ratio: float = setting(0.1, minimum=0.0, maximum=0.9)
    weight_decay: float = setting(0.01, help="AdamW weight decay", minimum=0.0)
    precision: str = setting(
        "auto",
        help="auto = bf16 where the GPU supports it, else fp16 on GPU, fp32 on CPU",
        choices=PRECISIONS,
    )
    max_length: int = setting(512, help="query + passage tokens", minimum=16)
    gradient_checkpointing: bool = setting(
        False,
        help="recompute activations in the backward pass: slower steps, far less memory",
        fingerprint=False,
    )
    top_k: int = setting(30, help="retriever candidates the reranker reorders", minimum=1)
    fusion_weight: float = setting(
        -1.0,
        help="final score = w * reranker + (1 - w) * retriever, each min-max scaled per query; "
        "-1 = choose w on held-out queries (0 keeps the retriever's order if the reranker does "
        "not help)",
        minimum=-1.0,
        maximum=1.0,
    )
    load_best_model_at_end: bool = setting(
        True, help="keep the checkpoint with the best held-out metric, not the last one"
    )
    eval_strategy: str = setting("epoch", choices=("epoch", "steps", "no"))
    eval_steps: int = setting(0, help="with eval_strategy = steps", minimum=0)
    save_total_limit: int = setting(2, minimum=1, fingerprint=False)
    seed: int = setting(42, help="seed for the new weights, shuffling and dropout")
    device: str = setting("auto", help="auto, cpu, cuda, cuda:1, mps", fingerprint=False)

    def inactive(self) -> set[str]:
        out = set()
        if self.loss != "lambda":
            out.add("mini_batch_size")
        if self.eval_strategy != "steps":
            out.add("eval_steps")
        return out

    def check(self) -> None:
        if self.range_min >= self.range_max:
            raise ConfigError(
                "reranker.range_min", self.range_min, f"a number below range_max ({self.range_max})"
            )
        if self.eval_strategy == "steps" and self.eval_steps <= 0:
            raise ConfigError(
                "reranker.eval_steps",
                self.eval_steps,
                "a positive number with eval_strategy = steps",
            )
        if -1.0 < self.fusion_weight < 0.0:
            raise ConfigError(
                "reranker.fusion_weight", self.fusion_weight, "-1 (choose) or a number from 0 to 1"
            )
