"""The reader registry: one reader per document suffix, and read_file dispatches through it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ingest import make_docx, make_pdf, sentences

from ragtune.engine.config.sources import DEFAULT_INCLUDE, DOCUMENT_SUFFIXES
from ragtune.engine.core.errors import InputError
from ragtune.engine.ingest import read_file
from ragtune.engine.ingest.discovery import FILE_SUFFIXES
from ragtune.engine.ingest.readers import READERS, Read


def test_every_document_suffix_has_a_reader_and_is_included_by_default() -> None:
    assert set(READERS) == set(DOCUMENT_SUFFIXES) == FILE_SUFFIXES
    assert [f"**/*{s}" for s in DOCUMENT_SUFFIXES] == DEFAULT_INCLUDE


def test_each_registered_suffix_reads_a_real_file(tmp_path: Path) -> None:
    text = sentences("travel", 3)
    files = {
        ".pdf": make_pdf(tmp_path / "a.pdf", [text]),
        ".docx": make_docx(tmp_path / "a.docx"),
        ".md": tmp_path / "a.md",
        ".markdown": tmp_path / "b.markdown",
        ".txt": tmp_path / "a.txt",
    }
    for suffix in (".md", ".markdown"):
        files[suffix].write_text(f"---\ntitle: x\n---\n# Travel\n\n{text}", encoding="utf-8")
    files[".txt"].write_text(text, encoding="utf-8")
    assert set(files) == set(READERS)
    docs = {suffix: read_file(path) for suffix, path in files.items()}
    assert docs[".pdf"].page_starts == [(0, 1)] and "travel rule number 0" in docs[".pdf"].text
    assert docs[".docx"].title == "Staff Handbook"
    assert docs[".md"].text.startswith("# Travel") and docs[".markdown"].title == "Travel"
    assert docs[".txt"].text == text and docs[".txt"].title == "a"


def test_a_registered_reader_is_used_and_named_in_the_unsupported_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.rst"
    path.write_text("Title\n=====\n\nBody text here.", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_file(path)
    assert "unsupported file type '.rst'" in err.value.message and ".pdf" in err.value.hint

    def read_rst(p: Path, where: str) -> Read:
        lines = p.read_text(encoding="utf-8").splitlines()
        return "\n".join(lines[3:]), lines[0], None

    monkeypatch.setitem(READERS, ".rst", read_rst)
    doc = read_file(path)
    assert (doc.title, doc.text) == ("Title", "Body text here.")
