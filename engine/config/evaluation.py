"""What is measured after training."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting


@dataclass
class EvalConfig(Section):
    k_values: list[int] = setting(
        default_factory=lambda: [1, 3, 5, 10, 100],
        help="cut-offs for accuracy/precision/recall",
        minimum=1,
    )
    primary_metric: str = setting("ndcg@10", help="metric shown first and used for comparisons")
    batch_size: int = setting(
        0,
        help="encoding batch size; 0 = sized to the device: 64 on CPU, on a CUDA GPU about 8 per "
        "GiB of free memory (64 to 1024). Encoding runs in the training precision (bf16/fp16) "
        "on a GPU, float32 on CPU",
        minimum=0,
        fingerprint=False,
    )
    benchmark: str = setting(
        "",
        help="optional folder of labelled queries to also evaluate on: BEIR layout (corpus.jsonl, queries.jsonl, qrels.tsv) or queries.jsonl + answers.tsv quoting each answer",
        fingerprint=False,  # its files are the input (stages._benchmark_files), wherever it sits
    )

    def encode_batch(self, device: str) -> int:
        """``batch_size`` with 0 resolved for ``device`` (see ``encode_batch_size``)."""
        from ragtune.engine.core.models import encode_batch_size

        return encode_batch_size(self.batch_size, device)
