"""The one builder and the one parser of flat metric keys such as ``dim_128_cosine_ndcg@10``.

The format is what sentence-transformers' ``InformationRetrievalEvaluator(truncate_dim=d,
name=f"dim_{d}")`` emits for a cosine model, and what the trainer logs with ``eval_`` in front,
so metrics.json, trainer logs and ST's own evaluator all read with the same two functions.
"""

from __future__ import annotations

import re

SCORE_NAME = "cosine"
TRAINER_PREFIX = "eval_"
_KEY = re.compile(rf"^(?:{TRAINER_PREFIX})?dim_(\d+)_{SCORE_NAME}_(.+)$")


def metric_key(dim: int, metric: str, prefix: str = "") -> str:
    """``metric_key(128, "ndcg@10", "eval_")`` → ``"eval_dim_128_cosine_ndcg@10"``."""
    return f"{prefix}dim_{dim}_{SCORE_NAME}_{metric}"


def parse_metric_key(key: str, prefix: str = "") -> tuple[int, str] | None:
    """``(dim, metric)`` of a key built by :func:`metric_key`, else None (losses, other keys).

    A key must start with ``prefix``; the trainer's ``eval_`` in front is accepted either way."""
    if not key.startswith(prefix):
        return None
    match = _KEY.match(key[len(prefix) :])
    return (int(match.group(1)), match.group(2)) if match else None
