"""Documents and chunks, and the chunks.parquet file every later stage refers to."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class Document:
    """Text of one source unit (a file, or a dataset row) before chunking."""

    doc_id: str
    text: str
    source: str
    title: str = ""
    # (character offset, page number) pairs, so chunks of a PDF keep their page.
    page_starts: list[tuple[int, int]] | None = None


@dataclass
class Chunk:
    chunk_id: str
    doc_id: str
    text: str
    source: str
    title: str = ""
    heading: str = ""
    page: int | None = None
    n_tokens: int = 0


def chunk_id_for(source: str, text: str) -> str:
    """Stable across runs: the same passage of the same source keeps its id."""
    return hashlib.sha1(f"{source}\x00{text}".encode()).hexdigest()[:16]


_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("title", pa.string()),
        ("heading", pa.string()),
        ("page", pa.int32()),
        ("n_tokens", pa.int32()),
    ]
)


class ChunkWriter:
    """Writes chunks in row groups so a big corpus never sits in memory whole."""

    def __init__(self, path: Path, batch_size: int = 2048) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_suffix(".parquet.tmp")
        self.batch_size = batch_size
        self._buffer: list[Chunk] = []
        self._writer = pq.ParquetWriter(str(self.tmp), _SCHEMA)
        self.count = 0

    def add(self, chunk: Chunk) -> None:
        self._buffer.append(chunk)
        if len(self._buffer) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        cols = {f.name: [getattr(c, f.name) for c in self._buffer] for f in fields(Chunk)}
        self._writer.write_table(pa.table(cols, schema=_SCHEMA))
        self.count += len(self._buffer)
        self._buffer = []

    def close(self) -> None:
        """Atomically publish the file: a killed ingest never leaves a half-written chunks file."""
        self._flush()
        self._writer.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)


def write_chunks(path: Path, chunks: Iterable[Chunk]) -> int:
    writer = ChunkWriter(path)
    try:
        for chunk in chunks:
            writer.add(chunk)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.count


def iter_chunks(path: Path, batch_size: int = 4096) -> Iterator[Chunk]:
    try:
        pf = pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException) as exc:
        from ragtune.engine.core.errors import InputError

        raise InputError(
            f"the chunks file cannot be read ({type(exc).__name__}: {exc})",
            where=str(path),
            hint="run again: ingest rebuilds a missing or damaged chunks file from the sources",
        ) from exc
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield Chunk(**row)


def read_chunks(path: Path) -> list[Chunk]:
    return list(iter_chunks(path))


def chunk_to_dict(chunk: Chunk) -> dict:
    return asdict(chunk)
