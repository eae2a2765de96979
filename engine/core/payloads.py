"""The typed payloads inside events: ``StageFinished.summary`` and ``Progress.extra``.

On the wire (``events.jsonl``, a stage's ``.state`` record) a payload stays a plain JSON
object, as ``to_dict`` writes it. Front ends read it back with ``from_dict``, which ignores keys
it does not know (a newer engine wrote them) and gives missing ones their defaults (an older
engine did not), so any events.jsonl renders with any version. Emitters build these classes
instead of writing keys by hand, so a key is spelled in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Self

# Field metadata of a key the stage writes only sometimes: left out of ``to_dict`` while None.
SOMETIMES = MappingProxyType({"sometimes": True})


@dataclass
class Payload:
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        """Known keys only; a value of the wrong kind (a hand-edited record) is its default."""
        data = data if isinstance(data, Mapping) else {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if not f.init or f.name not in data:
                continue
            value = data[f.name]
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if isinstance(default, (dict, list)) and not isinstance(value, type(default)):
                continue
            if value is None and default is not None:
                continue
            values[f.name] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for f in fields(self):
            if f.metadata.get("sometimes") and out[f.name] is None:
                del out[f.name]
        return out


@dataclass
class GenerationProgress(Payload):
    """The generate stage's counters while it runs. An LLM-free generator counts rows only;
    its other fields stay at values the front ends do not show."""

    rows: int | None = None
    """None when the event carries no row count (then not shown)."""
    rows_per_s: float = 0.0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    """Failed calls by reason, so far."""
    retries: dict[str, int] = field(default_factory=dict)
    """Retried calls by reason: a run waiting on 429s or timeouts says so while it waits."""
    cost_usd: float | None = None
    """None when the provider's prices are not known."""


@dataclass
class StepProgress(Payload):
    """A trainer's steps: which model is training (``embedder``, ``reranker``)."""

    model: str = ""
    elapsed: float = 0.0


@dataclass
class EncodeProgress(Payload):
    """Texts encoded during evaluation: by which model, and queries or documents."""

    model: str = ""
    part: str = ""


@dataclass
class GenerationSummary(Payload):
    """What the generate stage did. ``keys`` (the records this configuration stands for) goes
    to ``generate_keys.txt``, not into the summary."""

    chunks: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    rows: int = 0
    keys: list[str] = field(default_factory=list)
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_by_filter: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("keys")
        return out


@dataclass
class IngestSummary(Payload):
    """What ingest made: chunk counts and token lengths of the documents (``ChunkStats``), or,
    with no documents, the passages written from ``sources.description``."""

    documents: int = 0
    chunks: int | None = field(default=None, metadata=SOMETIMES)
    duplicates: int | None = field(default=None, metadata=SOMETIMES)
    too_short: int | None = field(default=None, metadata=SOMETIMES)
    skipped_files: int | None = field(default=None, metadata=SOMETIMES)
    max_tokens: int | None = field(default=None, metadata=SOMETIMES)
    tokens: dict[str, float] | None = field(default=None, metadata=SOMETIMES)
    """min, median and max tokens per chunk."""
    histogram: dict[str, int] | None = field(default=None, metadata=SOMETIMES)
    tokenizer: str | None = field(default=None, metadata=SOMETIMES)
    chunks_path: str | None = field(default=None, metadata=SOMETIMES)
    synthetic_chunks: int | None = field(default=None, metadata=SOMETIMES)


@dataclass
class PrepareSummary(Payload):
    """What data preparation made. A count is None in a record that lacks it (then shown as
    unknown), so a reader can tell "0 pairs" from "not recorded"."""

    rows_in: int = 0
    train_pairs: int | None = None
    eval_queries: int | None = None
    eval_chunks: int = 0
    corpus: int | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows dropped by each filter, only the filters that dropped some."""


@dataclass
class RerankSummary(Payload):
    """What the rerank stage did; metrics.json's ``reranker`` section holds the same object.

    A reranker the stage decided not to train has ``trained`` False and the ``reason``; a
    trained one has the training, the negatives and (with held-out queries) the evaluation.
    Each kind keeps the keys it always had: the others stay None and are not written."""

    trained: bool | None = field(default=None, metadata=SOMETIMES)
    reason: str | None = field(default=None, metadata=SOMETIMES)
    base_model: str = ""
    negatives: dict[str, int] | None = field(default=None, metadata=SOMETIMES)
    pos_weight: float | None = field(default=None, metadata=SOMETIMES)
    training: dict[str, Any] | None = field(default=None, metadata=SOMETIMES)
    fusion_weight: float | None = field(default=None, metadata=SOMETIMES)
    fresh_head: bool | None = field(default=None, metadata=SOMETIMES)
    embedder: str | None = field(default=None, metadata=SOMETIMES)
    evaluation: dict[str, Any] | None = field(default=None, metadata=SOMETIMES)

    @property
    def not_trained(self) -> bool:
        return self.trained is False


@dataclass
class TrainSummary(Payload):
    """What embedder training did; the mining, pseudo-label and teacher counts only when the
    loss used them."""

    dims: list[int] = field(default_factory=list)
    train_pairs: int = 0
    negatives: dict[str, Any] | None = field(default=None, metadata=SOMETIMES)
    pseudo_labels: dict[str, Any] | None = field(default=None, metadata=SOMETIMES)
    hybrid_teacher: dict[str, Any] | None = field(default=None, metadata=SOMETIMES)
    steps: int = 0
    best_metric: float | None = None
    best_checkpoint: str | None = None
    device: str = ""
    precision: str = ""
    candidates_per_query: int | None = field(default=None, metadata=SOMETIMES)
    """Added by the torchrun worker: what multi-GPU buys an in-batch loss."""


@dataclass
class ExportSummary(Payload):
    """Where export wrote each model (and pushed it, with ``export.push_to_hub``)."""

    embedder: str = ""
    retrieval: str = ""
    """The recommended retriever written to retrieval.json ("" when none was recommended)."""
    bm25_index: str = ""
    reranker: str | None = field(default=None, metadata=SOMETIMES)
    deploy: dict[str, Any] | None = field(default=None, metadata=SOMETIMES)
    """``export.formats``: the folder, the dim and each format's check."""
    embedder_url: str | None = field(default=None, metadata=SOMETIMES)
    reranker_url: str | None = field(default=None, metadata=SOMETIMES)


@dataclass
class IndexSummary(Payload):
    """The BM25 index the index stage built."""

    documents: int = 0
    terms: int = 0


@dataclass
class EvaluateSummary(Payload):
    """The query suites evaluated (``held-out``, ``benchmark``); the numbers are in metrics.json."""

    suites: list[str] = field(default_factory=list)


@dataclass
class DeploySummary(Payload):
    """The deploy table's size, its suggestion and the interpolation weight chosen, when made."""

    rows: int = 0
    suggestion: str | None = field(default=None, metadata=SOMETIMES)
    """``encoder dim precision`` of the suggested row."""
    interpolation_weight: float | None = field(default=None, metadata=SOMETIMES)
