"""Reading sources (files, folders, local or Hub datasets) into documents and chunks.parquet."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.chunking import Chunker, ChunkStats, cached_tokenizer, chunk_documents, model_max_tokens
from engine.config import RunConfig, SourcesConfig
from engine.errors import InputError, OfflineError, RagtuneError
from engine.events import Emitter
from engine.records import Chunk, ChunkWriter, Document
from engine.workspace import Workspace

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
FILE_SUFFIXES = {".pdf", ".docx", *TEXT_SUFFIXES}
DATASET_BUILDERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
}
_ENCODINGS = ("utf-8", "cp1252", "latin-1")
_FRONT_MATTER = re.compile(r"\A---\r?\n.*?\r?\n(?:---|\.\.\.)\r?\n", re.DOTALL)


# ---------------------------------------------------------------- file discovery


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Globs over relative posix paths: ``**/`` spans folders, ``*`` stays within one name.

    A pattern without a slash matches any single path component, as in .gitignore,
    so ``*.md`` finds markdown at every depth and ``drafts`` excludes a folder.
    """
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    if "/" not in pattern.strip("/"):
        return re.compile(f"(?:^|.*/){body}(?:/.*)?$", re.IGNORECASE)
    return re.compile(f"{body.lstrip('/')}(?:/.*)?$", re.IGNORECASE)


def _matches(rel: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.match(rel) for p in patterns)


def _is_hidden(rel: str) -> bool:
    """Dot folders (.git) and Office lock files (~$x.docx) are never documents."""
    return any(part.startswith((".", "~$")) for part in rel.split("/"))


def discover_files(
    cfg: SourcesConfig,
    base_dir: Path,
    *,
    missing: str = "error",
    on_missing: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Files named in ``paths`` plus folder contents that pass include and exclude, sorted.

    A file named directly is always kept (a wrong type is reported when read); folders
    are walked without following symlinked folders, so a link loop cannot hang ingest.
    ``missing="skip"`` passes over a path that does not exist (telling ``on_missing``), as a
    bad file is passed over, so one typo does not abort a run over many folders.
    """
    include = [_glob_regex(p) for p in cfg.include]
    exclude = [_glob_regex(p) for p in cfg.exclude]
    found: dict[Path, None] = {}
    for raw in cfg.paths:
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.exists():
            if missing == "skip":
                if on_missing is not None:
                    on_missing(path)
                continue
            raise InputError(
                "source path does not exist",
                where=str(path),
                hint="check sources.paths (relative paths are read from the config's folder)",
            )
        if path.is_file():
            found[path.resolve()] = None
            continue
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                rel = full.relative_to(path).as_posix()
                if _is_hidden(rel) or not _matches(rel, include) or _matches(rel, exclude):
                    continue
                found[full.resolve()] = None
    return sorted(found)


# ---------------------------------------------------------------- readers


def decode_text(data: bytes, where: str = "") -> str:
    """Bytes to text: BOMs first, then utf-8, then cp1252, with latin-1 as the last resort."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError(f"broken UTF-16 text ({exc.reason})", where=where) from None
    if b"\x00" in data[:4096]:
        raise InputError(
            "looks like a binary file, not text",
            where=where,
            hint="convert it to .txt, or exclude it with sources.exclude",
        )
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # pragma: no cover - latin-1 accepts every byte


def _first_heading(text: str) -> str:
    m = re.search(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, re.MULTILINE)
    return m.group(1).strip() if m else ""


def _read_pdf(path: Path) -> tuple[str, str, list[tuple[int, int]]]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(str(path))
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InputError(f"not a readable PDF ({exc})", where=str(path)) from None
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except (FileNotDecryptedError, NotImplementedError, PdfReadError, ValueError):
            ok = 0
        if not ok:
            raise InputError(
                "the PDF is encrypted (password protected)",
                where=str(path),
                hint="save an unprotected copy, or exclude it with sources.exclude",
            )
    parts: list[str] = []
    page_starts: list[tuple[int, int]] = []
    offset = 0
    for number, page in enumerate(reader.pages, start=1):
        text = (page.extract_text() or "").strip()
        if not text:
            continue
        page_starts.append((offset, number))
        parts.append(text)
        offset += len(text) + 2
    title = ""
    try:
        meta = reader.metadata
        title = str(meta.title or "").strip() if meta else ""
    except Exception:  # metadata is optional; a broken info dict must not drop the text
        title = ""
    if not parts:
        raise InputError(
            f"no extractable text in {len(reader.pages)} page(s) (a scanned PDF?)",
            where=str(path),
            hint="run OCR on it first (e.g. ocrmypdf), or exclude it",
        )
    return "\n\n".join(parts), title, page_starts


def _read_docx(path: Path) -> tuple[str, str]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises zip, xml and key errors for broken files
        raise InputError(
            f"not a readable .docx ({exc.__class__.__name__}: {exc})", where=str(path)
        ) from None
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
            lines.append("")
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = _heading_level(style)
        lines.append(f"{'#' * level} {text}" if level else text)
        lines.append("")
    title = (document.core_properties.title or "").strip()
    return "\n".join(lines).strip(), title


def _heading_level(style: str) -> int:
    """Word's "Title" and "Heading N" styles become markdown levels the chunker understands."""
    if style == "Title":
        return 1
    m = re.match(r"Heading (\d)", style)
    return min(int(m.group(1)), 6) if m else 0


def source_name(path: Path, base_dir: Path | None) -> str:
    """Relative to the config's folder when possible, so chunk ids survive moving the run."""
    if base_dir is not None:
        try:
            return path.resolve().relative_to(base_dir.resolve()).as_posix()
        except ValueError:
            pass
    return path.resolve().as_posix()


def read_file(path: Path, base_dir: Path | None = None) -> Document:
    """One file as a document; every reason it cannot be used is an ``InputError``."""
    path = Path(path)
    where = str(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise InputError(
            f"unsupported file type {suffix or '(none)'!r}",
            where=where,
            hint=f"use one of {', '.join(sorted(FILE_SUFFIXES))}, or load tables via sources.dataset",
        )
    page_starts = None
    title = ""
    try:
        if suffix == ".pdf":
            text, title, page_starts = _read_pdf(path)
        elif suffix == ".docx":
            text, title = _read_docx(path)
        else:
            text = decode_text(path.read_bytes(), where).replace("\r\n", "\n")
            if suffix in (".md", ".markdown"):
                text = _FRONT_MATTER.sub("", text, count=1)
    except RagtuneError:
        raise
    except PermissionError:
        raise InputError("permission denied", where=where) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", where=where) from None
    except Exception as exc:  # any parser failure is a bad file, not a crash of the run
        raise InputError(
            f"cannot parse the file ({exc.__class__.__name__}: {exc})", where=where
        ) from None
    if not text.strip():
        raise InputError("the file is empty (no text)", where=where)
    name = source_name(path, base_dir)
    return Document(
        doc_id=name,
        text=text,
        source=name,
        title=title or _first_heading(text) or path.stem,
        page_starts=page_starts,
    )


# ---------------------------------------------------------------- datasets


def _open_dataset(
    source: str, *, config: str = "", split: str = "train", base_dir: Path | None = None
) -> Any:
    """A streaming dataset, so neither a big local file nor a Hub dataset is loaded whole."""
    import datasets

    local = Path(source).expanduser()
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    looks_local = (
        local.exists()
        or local.suffix.lower() in DATASET_BUILDERS
        or source.startswith((".", "/", "~"))
    )
    try:
        if looks_local:
            if not local.exists():
                raise InputError(
                    "dataset file does not exist",
                    where=str(local),
                    hint="check sources.dataset (relative paths are read from the config's folder)",
                )
            if local.is_dir() and (local / "dataset_info.json").exists():
                return datasets.load_from_disk(str(local)).to_iterable_dataset()
            if local.is_dir() and (local / "dataset_dict.json").exists():
                return datasets.load_from_disk(str(local))[split].to_iterable_dataset()
            if local.is_dir():
                return datasets.load_dataset(str(local), split=split, streaming=True)
            builder = DATASET_BUILDERS.get(local.suffix.lower())
            if builder is None:
                raise InputError(
                    f"unsupported dataset file type {local.suffix!r}",
                    where=str(local),
                    hint="use .csv, .tsv, .json, .jsonl or .parquet",
                )
            kwargs = {"delimiter": "\t"} if local.suffix.lower() == ".tsv" else {}
            return datasets.load_dataset(
                builder, data_files=str(local), split="train", streaming=True, **kwargs
            )
        return datasets.load_dataset(source, config or None, split=split, streaming=True)
    except RagtuneError:
        raise
    except ConnectionError as exc:
        raise OfflineError(
            f"the Hugging Face Hub is unreachable, so dataset {source!r} cannot be loaded "
            f"({str(exc).splitlines()[0]})",
            where="sources.dataset",
            hint="download it on a machine with access and point sources.dataset at the local "
            "file (.csv/.jsonl/.parquet), or set HF_HUB_OFFLINE=0 if the network is reachable",
        ) from None
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise InputError(
                f"dataset {source!r} has no split {split!r} ({exc})",
                where="sources.dataset_split",
                hint="pick one of the dataset's splits",
            ) from None
        raise InputError(
            f"cannot load dataset {source!r}: {exc}", where="sources.dataset"
        ) from None
    except Exception as exc:
        raise InputError(
            f"cannot load dataset {source!r} ({exc.__class__.__name__}: {exc})",
            where="sources.dataset",
            hint="check the name (and sources.dataset_config), or use a local file",
        ) from None


def _first_rows(ds: Any, n: int, source: str) -> list[dict]:
    try:
        return list(ds.take(n))
    except RagtuneError:
        raise
    except ConnectionError as exc:
        raise OfflineError(
            f"the Hugging Face Hub is unreachable while reading dataset {source!r}",
            where="sources.dataset",
            hint="use a local copy of the dataset (.csv/.jsonl/.parquet)",
        ) from exc
    except Exception as exc:
        raise InputError(
            f"cannot read rows of dataset {source!r} ({exc.__class__.__name__}: {exc})",
            where="sources.dataset",
        ) from None


def _columns(ds: Any, first: list[dict]) -> list[str]:
    names = getattr(ds, "column_names", None)
    if names:
        return list(names)
    return list(first[0]) if first else []


def preview_dataset(
    source: str,
    *,
    config: str = "",
    split: str = "train",
    n: int = 5,
    base_dir: Path | None = None,
) -> tuple[list[str], list[dict]]:
    """Columns and the first rows, so the TUI can let the user pick the text column."""
    ds = _open_dataset(source, config=config, split=split, base_dir=base_dir)
    rows = _first_rows(ds, n, source)
    return _columns(ds, rows), rows


def _check_column(kind: str, name: str, columns: list[str], source: str) -> None:
    if name and name not in columns:
        raise InputError(
            f"dataset {source!r} has no {kind} column {name!r}; available columns: "
            + ", ".join(columns),
            where=f"sources.{kind}_column",
            hint=f"set sources.{kind}_column to one of: {', '.join(columns)}",
        )


def load_dataset_rows(cfg: SourcesConfig, base_dir: Path) -> Iterator[Document]:
    """Rows of the configured dataset as documents; empty texts are skipped quietly."""
    ds = _open_dataset(
        cfg.dataset, config=cfg.dataset_config, split=cfg.dataset_split, base_dir=base_dir
    )
    first = _first_rows(ds, 1, cfg.dataset)
    columns = _columns(ds, first)
    _check_column("text", cfg.text_column, columns, cfg.dataset)
    _check_column("id", cfg.id_column, columns, cfg.dataset)
    _check_column("title", cfg.title_column, columns, cfg.dataset)
    if cfg.max_rows:
        ds = ds.take(cfg.max_rows)
    name = cfg.dataset
    local = Path(name).expanduser()
    if not local.is_absolute():
        local = base_dir / local
    if local.exists():
        name = source_name(local, base_dir)
    for index, row in enumerate(ds):
        text = row.get(cfg.text_column)
        if text is None:
            continue
        text = text if isinstance(text, str) else str(text)
        if not text.strip():
            continue
        row_id = str(row[cfg.id_column]) if cfg.id_column else str(index)
        title = str(row.get(cfg.title_column) or "") if cfg.title_column else ""
        yield Document(doc_id=f"{name}#{row_id}", text=text, source=name, title=title)


# ---------------------------------------------------------------- the stage


def iter_documents(
    cfg: SourcesConfig,
    base_dir: Path,
    events: Emitter,
    *,
    stats: ChunkStats | None = None,
    limit: int = 0,
) -> Iterator[Document]:
    """Files then dataset rows, one at a time; unusable files are reported and skipped."""

    def missing(path: Path) -> None:
        if stats is not None:
            stats.skipped_files += 1
        events.warning(
            "skipped: source path does not exist",
            where=str(path),
            hint="check sources.paths (relative paths are read from the config's folder)",
        )

    files = discover_files(cfg, base_dir, missing="skip", on_missing=missing)
    yielded = 0
    for done, path in enumerate(files, start=1):
        try:
            doc = read_file(path, base_dir)
        except InputError as exc:
            if stats is not None:
                stats.skipped_files += 1
            events.warning(
                f"skipped {path.name}: {exc.message}",
                where=str(path),
                hint=exc.hint or "fix or remove the file; the other files are used",
            )
            events.progress(done, len(files), unit="files")
            continue
        events.progress(done, len(files), unit="files")
        yield doc
        yielded += 1
        if limit and yielded >= limit:
            return
    if cfg.dataset:
        total = cfg.max_rows or None
        for rows, doc in enumerate(load_dataset_rows(cfg, base_dir), start=1):
            yield doc
            yielded += 1
            events.progress(rows, total, unit="rows")
            if limit and yielded >= limit:
                return


def tokenizer_name(cfg: RunConfig) -> str:
    return cfg.chunking.tokenizer or cfg.embedder.base_model


def make_chunker(cfg: RunConfig) -> Chunker:
    """The chunker for a run: its tokenizer, capped by the length the saved model reads.

    ``embedder.max_seq_length`` only shortens training inputs, so it does not cap chunks.
    """
    name = tokenizer_name(cfg)
    tokenizer = cached_tokenizer(name)
    return Chunker(cfg.chunking, tokenizer, model_max_length=model_max_tokens(name, tokenizer))


def _no_documents(cfg: SourcesConfig) -> InputError:
    searched = ", ".join(cfg.paths) or "(no paths)"
    if cfg.dataset:
        searched += f"; dataset {cfg.dataset}"
    return InputError(
        f"no usable documents found in {searched}",
        where="sources",
        hint=f"check sources.paths and sources.include ({', '.join(cfg.include)}); "
        "skipped files are listed above with the reason",
    )


def run_ingest(cfg: RunConfig, ws: Workspace, events: Emitter) -> dict[str, Any]:
    """Chunk every source into ``chunks.parquet`` and return the summary the pipeline reports."""
    if not cfg.sources.has_documents:
        raise InputError(
            "no sources to ingest",
            where="sources",
            hint="set sources.paths or sources.dataset (a description-only run skips ingest)",
        )
    chunker = make_chunker(cfg)
    stats = ChunkStats()
    docs = iter_documents(cfg.sources, cfg.base_dir, events, stats=stats)
    writer = ChunkWriter(ws.chunks_path)
    try:
        for chunk in chunk_documents(docs, chunker, stats):
            writer.add(chunk)
        if stats.documents == 0:
            raise _no_documents(cfg.sources)
        if stats.chunks == 0:
            raise InputError(
                f"all {stats.too_short + stats.duplicates} chunks of {stats.documents} "
                f"document(s) were dropped ({stats.too_short} shorter than "
                f"{cfg.chunking.min_tokens} tokens, {stats.duplicates} duplicates)",
                where="chunking.min_tokens",
                hint="lower chunking.min_tokens, or add longer documents",
            )
    except BaseException:
        writer.abort()
        raise
    writer.close()
    summary = stats.to_dict()
    summary["tokenizer"] = tokenizer_name(cfg)
    summary["chunks_path"] = str(ws.chunks_path)
    return summary


def preview_chunks(
    cfg: RunConfig, limit_docs: int = 50, sample: int = 5
) -> tuple[list[Chunk], ChunkStats]:
    """Chunk only the first documents, for the TUI's live view of the chunking settings."""
    chunker = make_chunker(cfg)
    stats = ChunkStats()
    docs = iter_documents(cfg.sources, cfg.base_dir, Emitter(), stats=stats, limit=limit_docs)
    chunks = list(chunk_documents(docs, chunker, stats))
    if len(chunks) <= sample:
        return chunks, stats
    step = len(chunks) / sample
    return [chunks[int(i * step)] for i in range(sample)], stats
