"""Reading one file into a Document: PDF with pages, DOCX with headings, text with encoding fallback.

``READERS`` maps a file suffix to its reader; discovery, the error for an unsupported file and
the wizard's file check all read it, so a new file type is one ``@reads(...)`` function here,
its suffix in ``ragtune.engine.config.sources.DOCUMENT_SUFFIXES`` (the default include globs), and a test.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ragtune.engine.core.errors import InputError, RagtuneError
from ragtune.engine.core.records import Document

_ENCODINGS = ("utf-8", "cp1252", "latin-1")
_FRONT_MATTER = re.compile(r"\A---\r?\n.*?\r?\n(?:---|\.\.\.)\r?\n", re.DOTALL)


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


_log = logging.getLogger("ragtune.engine.ingest")

Read = tuple[str, str, "list[tuple[int, int]] | None"]
"""A reader's result: the text, a title ("" when the file names none), page starts (PDF)."""
Reader = Callable[[Path, str], Read]
READERS: dict[str, Reader] = {}


def reads(*suffixes: str) -> Callable[[Reader], Reader]:
    """``@reads(".md", ".markdown")`` on ``read(path, where) -> (text, title, page_starts)``;
    failures raise ``InputError`` naming ``where`` (other exceptions become one in
    ``read_file``)."""

    def add(reader: Reader) -> Reader:
        for suffix in suffixes:
            READERS[suffix] = reader
        return reader

    return add


@contextmanager
def _pypdf_notes() -> Iterator[list[str]]:
    """pypdf's own warnings ("EOF marker not found", "incorrect startxref pointer"), collected.

    pypdf logs them (and warns) straight to the terminal, in the middle of the progress
    display and without naming the file. Collected here, they go into the file's skip
    message when the file cannot be read, and to the debug log when pypdf repaired it.
    """
    notes: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage().strip()
            if message and message not in notes:
                notes.append(message)

    logger = logging.getLogger("pypdf")
    handler = _Collect(level=logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, *args, **kwargs: handler.emit(
                logging.makeLogRecord({"msg": str(message)})
            )
            yield notes
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _with_notes(reason: str, notes: list[str]) -> str:
    """``reason`` plus pypdf's first notes, so a skipped PDF says what pypdf saw."""
    if not notes:
        return reason
    shown = "; ".join(notes[:3]) + ("; …" if len(notes) > 3 else "")
    return f"{reason}; pypdf: {shown}"


@reads(".pdf")
def _read_pdf(path: Path, where: str = "") -> Read:
    with _pypdf_notes() as notes:
        try:
            result = _read_pdf_pages(path)
        except InputError as exc:
            exc.message = _with_notes(exc.message, notes)
            raise
        except Exception as exc:
            raise InputError(
                _with_notes(f"cannot parse the PDF ({exc.__class__.__name__}: {exc})", notes),
                where=str(path),
            ) from None
    if notes:
        _log.debug("%s: read after pypdf repaired it: %s", path, "; ".join(notes))
    return result


def _read_pdf_pages(path: Path) -> tuple[str, str, list[tuple[int, int]]]:
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


@reads(".docx")
def _read_docx(path: Path, where: str = "") -> Read:
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
    return "\n".join(lines).strip(), title, None


@reads(".txt")
def _read_text(path: Path, where: str) -> Read:
    return decode_text(path.read_bytes(), where).replace("\r\n", "\n"), "", None


@reads(".md", ".markdown")
def _read_markdown(path: Path, where: str) -> Read:
    text, _, _ = _read_text(path, where)
    return _FRONT_MATTER.sub("", text, count=1), "", None


def _heading_level(style: str) -> int:
    """Word's "Title" and "Heading N" styles become markdown levels the chunker understands."""
    if style == "Title":
        return 1
    m = re.match(r"Heading (\d)", style)
    return min(int(m.group(1)), 6) if m else 0


def source_name(path: Path) -> str:
    """A dataset file goes by its file name, not where it sits (see ``discovery.source_names``)."""
    return Path(path).name


def read_file(path: Path, name: str | None = None) -> Document:
    """One file as a document named ``name`` (default: its file name); every reason it
    cannot be used is an ``InputError``."""
    path = Path(path)
    where = str(path)
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise InputError(
            f"unsupported file type {suffix or '(none)'!r}",
            where=where,
            hint=f"use one of {', '.join(sorted(READERS))}, or load tables via sources.dataset",
        )
    try:
        text, title, page_starts = reader(path, where)
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
    name = name or path.name
    return Document(
        doc_id=name,
        text=text,
        source=name,
        title=title or _first_heading(text) or path.stem,
        page_starts=page_starts,
    )
