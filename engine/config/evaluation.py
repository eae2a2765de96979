"""What is measured after training."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.base import Section, setting


@dataclass
class EvalConfig(Section):
    k_values: list[int] = setting(
        default_factory=lambda: [1, 3, 5, 10, 100],
        help="cut-offs for accuracy/precision/recall",
        minimum=1,
    )
    primary_metric: str = setting("ndcg@10", help="metric shown first and used for comparisons")
    batch_size: int = setting(64, help="encoding batch size", minimum=1, fingerprint=False)
    benchmark: str = setting(
        "",
        help="optional folder of labelled queries to also evaluate on: BEIR layout (corpus.jsonl, queries.jsonl, qrels.tsv) or queries.jsonl + answers.tsv quoting each answer",
        fingerprint=False,  # its files are the input (stages._benchmark_files), wherever it sits
    )
