"""Training rows with mined negatives, and GPL's cross-encoder pseudo-labels on them.

In-batch negatives from a few thousand pseudo-queries are mostly easy: other chunks on
other topics. Negatives the base model itself ranks high teach the distinctions the
domain needs. Ranks just under the top are skipped, as a pseudo-query names one chunk
while real collections judge many passages relevant to a query (FlagEmbedding samples
ranks 2-200 for the same reason; GPL lets a cross-encoder's margin sort it out instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.data.mining import (
    MiningWindow,
    QueryGroup,
    add_random_negatives,
    build_groups,
    mine,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, SentenceTransformer


def mining_window(cfg: EmbedderConfig) -> MiningWindow:
    return MiningWindow(
        num_negatives=cfg.hard_negatives,
        range_min=cfg.negative_range_min,
        range_max=cfg.negative_range_max,
        sampling="random",
        margin=-1.0,
        seed=cfg.seed,
    )


def mined_groups(
    train: Dataset,
    corpus: Mapping[str, str],
    model: SentenceTransformer,
    cfg: EmbedderConfig,
    *,
    exclude_chunks: set[str],
    events: Emitter,
    batch_size: int = 64,
) -> tuple[list[QueryGroup], dict[str, int]]:
    """``cfg.hard_negatives`` negatives for every training query, from the pool without the
    held-out chunks (they are never trained on in any role); random ones fill a query's
    row where mining found too few, so every row has the same columns."""
    pool = {cid: text for cid, text in corpus.items() if cid not in exclude_chunks}
    groups = build_groups(train)
    events.info(f"mining {cfg.hard_negatives} hard negative(s) per training query")
    counts = mine(groups, pool, model, mining_window(cfg), batch_size=batch_size)
    counts.update(add_random_negatives(groups, pool, cfg.hard_negatives, cfg.seed, up_to=True))
    groups = [g for g in groups if len(g.negatives) >= cfg.hard_negatives]
    for g in groups:
        del g.negatives[cfg.hard_negatives :]
    counts["queries"] = len(groups)
    events.info(
        f"negatives: {counts['mined']} mined, {counts['random']} random for {len(groups)} queries"
    )
    return groups, counts


def negative_columns(groups: list[QueryGroup]) -> Dataset:
    """(anchor, positive, negative_1..n) rows, for the in-batch losses."""
    from datasets import Dataset

    n = min((len(g.negatives) for g in groups), default=0)
    data: dict[str, list[str]] = {
        "anchor": [g.query for g in groups],
        "positive": [g.positive for g in groups],
    }
    for i in range(n):
        data[f"negative_{i + 1}"] = [g.negatives[i][0] for g in groups]
    return Dataset.from_dict(data)


def pseudo_labelled(
    groups: list[QueryGroup], cross_encoder: CrossEncoder, *, batch_size: int = 32
) -> tuple[Dataset, dict[str, Any]]:
    """(anchor, positive, negative, label) rows, one per mined negative, labelled with the
    cross-encoder's logit margin score(q, positive) - score(q, negative), as GPL does.

    Raw logits, not probabilities: a sigmoid flattens exactly the margins between two
    passages the cross-encoder both finds relevant, which are the informative ones.
    """
    import numpy as np
    import torch
    from datasets import Dataset

    triples = [(g.query, g.positive, passage) for g in groups for passage, _ in g.negatives]
    pairs = [(q, p) for q, p, _ in triples] + [(q, n) for q, _, n in triples]
    scores = np.asarray(
        cross_encoder.predict(
            pairs,
            batch_size=batch_size,
            activation_fn=torch.nn.Identity(),
            show_progress_bar=False,
        ),
        dtype=np.float64,
    ).reshape(-1)
    margins = scores[: len(triples)] - scores[len(triples) :]
    data = Dataset.from_dict(
        {
            "anchor": [t[0] for t in triples],
            "positive": [t[1] for t in triples],
            "negative": [t[2] for t in triples],
            "label": margins.tolist(),
        }
    )
    stats = {
        "rows": len(triples),
        "mean_margin": float(margins.mean()) if len(margins) else 0.0,
        "margin_std": float(margins.std()) if len(margins) else 0.0,
        # The cross-encoder prefers the "negative": GPL's guard against false negatives.
        "negative_preferred": int((margins < 0).sum()),
    }
    return data, stats
