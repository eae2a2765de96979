"""The frozen base model's embeddings of the training rows, computed once before training.

The ``distill`` loss needs the base model's view of every text in a batch. The base model
never changes, so running it inside each step repeats the same forward passes every epoch
and keeps a second model in memory for the whole run. sentence-transformers' own
distillation idiom stores the teacher's output as a label column instead: the collator
hands it to the loss beside the tokenized texts. A retrain that changes only how the student
learns (the common loop: another learning rate, more epochs) reads the embeddings the last
training saved in the workspace, fingerprinted with the base model and the texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

# A column name sentence-transformers' collator passes to the loss as ``labels``.
TEACHER_COLUMN = "label"
# embeddings/<TEACHER_SET>.npy: the latest teacher embeddings, read by a retrain.
TEACHER_SET = "teacher-embedder"


def text_columns(rows: Dataset) -> list[str]:
    """The columns the trainer tokenizes, in the order the loss receives them."""
    return [c for c in rows.column_names if c != TEACHER_COLUMN]


def precompute_teacher(
    teacher: SentenceTransformer,
    rows: Dataset,
    prompts: Mapping[str, str],
    *,
    batch_size: int = 64,
    autocast_dtype: Any = None,
) -> Dataset:
    """``rows`` with a ``label`` column: per row, the teacher's unit-length embedding of each
    text column, shape (columns, dim), float32, in column order (``teacher_embeddings``)."""
    if TEACHER_COLUMN in rows.column_names:
        raise ValueError(f"rows already have a {TEACHER_COLUMN!r} column")
    return with_column(
        rows,
        teacher_embeddings(
            teacher, rows, prompts, batch_size=batch_size, autocast_dtype=autocast_dtype
        ),
    )


def teacher_embeddings(
    teacher: SentenceTransformer,
    rows: Dataset,
    prompts: Mapping[str, str],
    *,
    batch_size: int = 64,
    autocast_dtype: Any = None,
) -> np.ndarray:
    """Per row, the teacher's unit-length embedding of each text column: an array of shape
    (rows, columns, dim), float32, in column order.

    Contract for callers (the training stage, a pre-training stage before the ranks start,
    or each rank on its own rows): a plain function with no collectives and no randomness,
    so any process may call it on any rows and gets the values the per-step teacher would
    compute. ``teacher`` must hold the base weights, in eval mode, with the student's
    ``max_seq_length`` (the per-step teacher saw the student's truncated tokens);
    ``prompts`` maps column to the prompt the trainer puts before it (as
    ``prompts_for_columns`` returns). ``autocast_dtype`` is the training precision on a GPU
    (bfloat16 or float16); None runs it in the model's own dtype. Each distinct text is
    encoded once per prompt.
    """
    import numpy as np
    import torch

    columns = text_columns(rows)
    by_prompt: dict[str, dict[str, int]] = {}
    for column in columns:
        index = by_prompt.setdefault(prompts.get(column, ""), {})
        for text in rows[column]:
            index.setdefault(text, len(index))
    device = str(teacher.device)
    context = (
        torch.autocast(device_type=device.split(":")[0], dtype=autocast_dtype)
        if autocast_dtype is not None
        else nullcontext()
    )
    table: dict[str, np.ndarray] = {}
    was_training = teacher.training
    teacher.eval()
    try:
        with context, torch.inference_mode():
            for prompt, index in by_prompt.items():
                table[prompt] = teacher.encode(
                    list(index),
                    prompt=prompt or None,
                    batch_size=batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                ).astype(np.float32)
    finally:
        teacher.train(was_training)
    return np.stack(
        [
            table[prompts.get(column, "")][
                [by_prompt[prompts.get(column, "")][t] for t in rows[column]]
            ]
            for column in columns
        ],
        axis=1,
    )


def teacher_fingerprint(
    teacher: SentenceTransformer,
    base_model: str,
    rows: Dataset,
    prompts: Mapping[str, str],
    *,
    autocast_dtype: Any = None,
    attention_dropout: float | None = None,
) -> str:
    """What the teacher's embeddings of these rows depend on: the base model's files, its own
    prompts, input length, dtype and device kind, the precision it ran in, the prompt per
    column and every text in row order. A retrain that changes only how the student learns
    (learning rate, epochs, batch size, seed) finds the same fingerprint."""
    from ragtune.engine.core.models import resolve_model
    from ragtune.engine.core.stages import digest
    from ragtune.engine.evaluate.saved import FORMAT, model_identity

    columns = text_columns(rows)
    return digest(
        [
            FORMAT,
            model_identity(resolve_model(base_model)),
            dict(getattr(teacher, "prompts", {}) or {}),
            getattr(teacher, "max_seq_length", None),
            str(next(teacher.parameters()).dtype),
            str(teacher.device).split(":")[0],
            str(autocast_dtype),
            attention_dropout,
            [(column, prompts.get(column, "")) for column in columns],
            [digest(rows[column]) for column in columns],
        ]
    )


def saved_teacher(folder: Path, fingerprint: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The teacher's embeddings an earlier training of this workspace saved, when their
    fingerprint and (rows, columns) match; else None (missing, stale or damaged)."""
    import json

    import numpy as np

    sidecar, array = _teacher_paths(folder)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint:
            return None
        embeddings = np.load(array)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if embeddings.ndim != 3 or embeddings.shape[:2] != shape or embeddings.dtype != np.float32:
        return None
    return embeddings


def save_teacher(folder: Path, fingerprint: str, embeddings: np.ndarray) -> None:
    """One set per workspace (the latest base model and rows): the array first, the sidecar
    with its fingerprint last, so a set written halfway is never read."""
    from ragtune.engine.evaluate.saved import write_set

    sidecar, array = _teacher_paths(folder)
    write_set(
        sidecar, {array: embeddings}, {"fingerprint": fingerprint, "shape": list(embeddings.shape)}
    )


def _teacher_paths(folder: Path) -> tuple[Path, Path]:
    return folder / f"{TEACHER_SET}.json", folder / f"{TEACHER_SET}.npy"


def with_column(rows: Dataset, embeddings: Any) -> Dataset:
    """``rows`` beside a (rows, columns, dim) float32 array as a fixed-size list column, built
    in Arrow: no Python float per value, whatever the corpus size."""
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset, concatenate_datasets
    from datasets.table import InMemoryTable

    _, columns, dim = embeddings.shape
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(
        pa.FixedSizeListArray.from_arrays(flat, dim), columns
    )
    table = Dataset(InMemoryTable(pa.table({TEACHER_COLUMN: column})))
    return concatenate_datasets([rows.flatten_indices() if rows._indices else rows, table], axis=1)
