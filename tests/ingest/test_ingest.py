"""Ingest: every file type and dataset source, bad inputs reported by name, and the stage output."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ragtune.engine.config import RunConfig, SourcesConfig
from ragtune.engine.core.errors import InputError, OfflineError
from ragtune.engine.core.events import Emitter, Message, Progress
from ragtune.engine.core.records import read_chunks
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.ingest import (
    discover_files,
    discover_sources,
    iter_documents,
    load_dataset_rows,
    preview_chunks,
    preview_dataset,
    read_file,
    run_ingest,
)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def sentences(topic: str, n: int = 12) -> str:
    return " ".join(
        f"The {topic} rule number {i} asks staff to keep receipts for {i + 3} years."
        for i in range(n)
    )


def make_pdf(path: Path, pages: list[str]) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    for text in pages:
        y = 800
        words = text.split()
        for i in range(0, len(words), 12):
            pdf.drawString(40, y, " ".join(words[i : i + 12]))
            y -= 14
        pdf.showPage()
    pdf.save()
    return path


def make_encrypted_pdf(src: Path, path: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(str(src)))
    writer.encrypt("secret", algorithm="AES-128")
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Staff Handbook", level=0)
    document.add_heading("Holidays", level=1)
    document.add_paragraph(sentences("holiday", 4))
    document.add_heading("Sick days", level=2)
    document.add_paragraph(sentences("sickness", 4))
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Grade"
    table.cell(0, 1).text = "Days"
    table.cell(1, 0).text = "Senior"
    table.cell(1, 1).text = "30"
    document.save(str(path))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder with one good file of each kind and one broken file of each kind."""
    root = tmp_path / "docs"
    (root / "sub" / "drafts").mkdir(parents=True)
    make_pdf(root / "report.pdf", [sentences(f"page{p}") for p in (1, 2, 3)])
    make_encrypted_pdf(root / "report.pdf", root / "locked.pdf")
    (root / "corrupt.pdf").write_bytes(random.Random(0).randbytes(3000))
    make_docx(root / "sub" / "handbook.docx")
    (root / "sub" / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (root / "guide.md").write_text(
        "---\ntitle: x\n---\n# Guide\n\n## Travel\n\n" + sentences("travel"), encoding="utf-8"
    )
    (root / "empty.txt").write_text("   \n", encoding="utf-8")
    (root / "legacy.txt").write_bytes(
        ("Café “déjà vu” – price 5€. " + sentences("legacy")).encode("cp1252")
    )
    (root / "sub" / "drafts" / "draft.md").write_text("# Draft\n\n" + sentences("draft"))
    (root / "notes.csv").write_text("a,b\n1,2\n")
    (root / ".hidden.md").write_text("# Hidden\n\n" + sentences("hidden"))
    return root


def warnings_of(events: list) -> dict[str, Message]:
    return {
        Path(e.where).name: e for e in events if isinstance(e, Message) and e.level == "warning"
    }


def test_discover_applies_include_and_exclude(corpus: Path):
    cfg = SourcesConfig(paths=["docs"])
    found = {p.relative_to(corpus).as_posix() for p in discover_files(cfg, corpus.parent)}
    assert found == {
        "report.pdf",
        "locked.pdf",
        "corrupt.pdf",
        "guide.md",
        "empty.txt",
        "legacy.txt",
        "sub/handbook.docx",
        "sub/broken.docx",
        "sub/drafts/draft.md",
    }
    paths = discover_files(cfg, corpus.parent)
    assert paths == sorted(paths)
    narrowed = SourcesConfig(paths=[str(corpus)], include=["*.md", "sub/**"], exclude=["drafts"])
    found = {p.relative_to(corpus).as_posix() for p in discover_files(narrowed, Path("/"))}
    assert found == {"guide.md", "sub/handbook.docx", "sub/broken.docx"}
    single = SourcesConfig(paths=["docs/notes.csv"], include=["*.md"])
    assert [p.name for p in discover_files(single, corpus.parent)] == ["notes.csv"]


def test_source_names_do_not_depend_on_where_the_files_sit(tmp_path: Path):
    for base in ("one", "two/deeper"):
        for team in ("a", "b"):
            folder = tmp_path / base / team / "docs"
            folder.mkdir(parents=True)
            (folder / "guide.md").write_text("# Guide")
        (tmp_path / base / "faq.txt").write_text("faq")
    names = [
        sorted(
            discover_sources(
                SourcesConfig(paths=["a/docs", "b/docs", "faq.txt"]), tmp_path / base
            ).values()
        )
        for base in ("one", "two/deeper")
    ]
    # Two folders called docs take their parent's name to stay apart; nothing absolute.
    assert names[0] == names[1] == ["a/docs/guide.md", "b/docs/guide.md", "faq.txt"]
    single = discover_sources(SourcesConfig(paths=["a/docs"]), tmp_path / "one")
    assert list(single.values()) == ["docs/guide.md"]


def test_missing_path_is_named(tmp_path: Path):
    with pytest.raises(InputError) as err:
        discover_files(SourcesConfig(paths=["nowhere/docs"]), tmp_path)
    assert "nowhere/docs" in err.value.where
    assert "does not exist" in err.value.message


def test_pdf_keeps_page_numbers(corpus: Path):
    doc = read_file(corpus / "report.pdf")
    assert doc.source == "report.pdf"
    assert [p for _, p in doc.page_starts] == [1, 2, 3]
    for offset, page in doc.page_starts:
        assert doc.text[offset:].startswith(f"The page{page} rule number 0")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("locked.pdf", "encrypted"),
        ("corrupt.pdf", "not a readable PDF"),
        ("broken.docx", "not a readable .docx"),
        ("empty.txt", "empty"),
        ("notes.csv", "unsupported file type"),
    ],
)
def test_bad_files_raise_with_reason(corpus: Path, name: str, reason: str):
    with pytest.raises(InputError) as err:
        read_file(corpus / name)
    assert reason in err.value.message
    assert err.value.where.endswith(name)


def test_text_encodings(tmp_path: Path, corpus: Path):
    legacy = read_file(corpus / "legacy.txt")
    assert legacy.text.startswith("Café “déjà vu” – price 5€.")
    (tmp_path / "u16.txt").write_bytes("Grüße aus Köln.".encode("utf-16"))
    assert read_file(tmp_path / "u16.txt").text == "Grüße aus Köln."
    (tmp_path / "bom.txt").write_bytes("\ufeffNaïve text.".encode())
    assert read_file(tmp_path / "bom.txt").text == "Naïve text."
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputError, match="binary"):
        read_file(tmp_path / "bin.txt")


def test_docx_headings_become_markdown(corpus: Path):
    doc = read_file(corpus / "sub" / "handbook.docx")
    lines = [line for line in doc.text.splitlines() if line.startswith("#")]
    assert lines == ["# Staff Handbook", "# Holidays", "## Sick days"]
    assert "Senior | 30" in doc.text
    assert doc.title == "Staff Handbook"


def test_markdown_front_matter_and_title(corpus: Path):
    doc = read_file(corpus / "guide.md")
    assert doc.text.startswith("# Guide")
    assert doc.title == "Guide"


def test_iter_documents_skips_bad_files_and_goes_on(corpus: Path):
    events: list = []
    docs = list(
        iter_documents(SourcesConfig(paths=["docs"]), corpus.parent, Emitter(events.append))
    )
    assert sorted(Path(d.source).name for d in docs) == [
        "draft.md",
        "guide.md",
        "handbook.docx",
        "legacy.txt",
        "report.pdf",
    ]
    warned = warnings_of(events)
    assert set(warned) == {"locked.pdf", "corrupt.pdf", "broken.docx", "empty.txt"}
    assert "encrypted" in warned["locked.pdf"].text and warned["locked.pdf"].hint
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == 9
    assert progress[-1].unit == "files"


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    rows = [{"id": f"r{i}", "title": f"Row {i}", "body": sentences(f"row{i}", 3)} for i in range(6)]
    rows.append({"id": "blank", "title": "Blank", "body": "  "})
    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(f'"{r[k]}"' for k in keys) for r in rows]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    return tmp_path


@pytest.mark.parametrize("name", ["rows.csv", "rows.jsonl", "rows.parquet"])
def test_local_dataset_rows(tables: Path, name: str):
    cfg = SourcesConfig(dataset=name, text_column="body", id_column="id", title_column="title")
    docs = list(load_dataset_rows(cfg, tables))
    assert [d.doc_id for d in docs] == [f"{name}#r{i}" for i in range(6)]
    assert docs[2].title == "Row 2"
    assert docs[2].text == sentences("row2", 3)
    assert {d.source for d in docs} == {name}
    limited = SourcesConfig(dataset=name, text_column="body", max_rows=2)
    assert [d.doc_id for d in load_dataset_rows(limited, tables)] == [f"{name}#0", f"{name}#1"]


def test_missing_text_column_lists_columns(tables: Path):
    cfg = SourcesConfig(dataset="rows.jsonl", text_column="text")
    with pytest.raises(InputError) as err:
        list(load_dataset_rows(cfg, tables))
    assert "'text'" in err.value.message
    for column in ("id", "title", "body"):
        assert column in err.value.message
    assert err.value.where == "sources.text_column"


def test_missing_dataset_file_is_named(tmp_path: Path):
    with pytest.raises(InputError) as err:
        list(load_dataset_rows(SourcesConfig(dataset="gone.parquet"), tmp_path))
    assert "gone.parquet" in err.value.where


def test_hub_offline_gives_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        list(load_dataset_rows(SourcesConfig(dataset="acme/handbook-qa"), tmp_path))
    text = str(err.value)
    assert "acme/handbook-qa" in text
    assert "cannot be reached" in text and "not in the local cache" in text
    assert err.value.where == "sources.dataset"
    assert ".jsonl" in err.value.hint


def test_preview_dataset(tables: Path):
    columns, rows = preview_dataset("rows.parquet", n=3, base_dir=tables)
    assert columns == ["id", "title", "body"]
    assert [r["id"] for r in rows] == ["r0", "r1", "r2"]


def run_config(base: Path, **sources) -> RunConfig:
    cfg = RunConfig.from_dict(
        {
            "sources": sources,
            "chunking": {"max_tokens": 64, "overlap_tokens": 8, "min_tokens": 8},
            "embedder": {"base_model": MINILM},
        }
    )
    cfg.base_dir = base
    return cfg


def test_run_ingest_writes_chunks_and_summary(corpus: Path, tables: Path):
    cfg = run_config(
        corpus.parent,
        paths=["docs"],
        exclude=["drafts"],
        dataset="rows.csv",
        text_column="body",
        id_column="id",
    )
    ws = Workspace.create(corpus.parent / "ws")
    events: list = []
    summary = run_ingest(cfg, ws, Emitter(events.append))
    chunks = read_chunks(ws.chunks_path)
    assert summary["chunks"] == len(chunks) > 10
    assert summary["documents"] == 4 + 6
    assert summary["skipped_files"] == 4
    assert sum(summary["histogram"].values()) == len(chunks)
    assert summary["tokens"]["max"] <= 64
    assert {c.page for c in chunks if c.source == "docs/report.pdf"} == {1, 2, 3}
    assert {c.heading for c in chunks if c.source == "docs/sub/handbook.docx"} >= {"Holidays"}
    assert any(c.doc_id == "rows.csv#r3" for c in chunks)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert set(warnings_of(events)) == {"locked.pdf", "corrupt.pdf", "broken.docx", "empty.txt"}
    again = run_ingest(cfg, ws, Emitter())
    assert again == summary
    assert [c.chunk_id for c in read_chunks(ws.chunks_path)] == [c.chunk_id for c in chunks]


def test_run_ingest_without_documents(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "empty.txt").write_text("")
    ws = Workspace.create(tmp_path / "ws")
    with pytest.raises(InputError) as err:
        run_ingest(run_config(tmp_path, paths=["docs"]), ws, Emitter())
    assert "no usable documents" in err.value.message
    assert err.value.hint
    assert not ws.chunks_path.exists()
    assert not list(ws.root.glob("*.tmp"))


def test_preview_chunks_uses_first_documents(corpus: Path):
    cfg = run_config(corpus.parent, paths=["docs"])
    sample, stats = preview_chunks(cfg, limit_docs=2, sample=3)
    assert stats.documents == 2
    assert 0 < len(sample) <= 3
    assert all(c.n_tokens <= 64 for c in sample)


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("header.csv", "text,id\n", "has no rows: only a header line (text, id)"),
        ("header.tsv", "text\tid\n", "has no rows: only a header line (text, id)"),
        ("zero.csv", "", "empty: no columns and no rows"),
        ("blank.jsonl", "  \n", "empty: no columns and no rows"),
    ],
)
def test_dataset_without_rows_says_so_and_how_to_fix(
    tmp_path: Path, name: str, content: str, said: str
):
    """Not "has no text column 'text'; available columns: " with nothing listed."""
    (tmp_path / name).write_text(content)
    for read in (
        lambda: list(load_dataset_rows(SourcesConfig(dataset=name), tmp_path)),
        lambda: preview_dataset(name, base_dir=tmp_path),
    ):
        with pytest.raises(InputError) as err:
            read()
        assert said in err.value.message
        assert "available columns" not in err.value.message
        assert err.value.where.endswith(name)
        assert "sources.text_column" in err.value.hint and "sources.dataset" in err.value.hint


def broken_pdfs(folder: Path) -> dict[str, Path]:
    """Real damaged PDFs: a repairable bad xref offset, a cut-off file, junk with a PDF header."""
    good = make_pdf(folder / "good.pdf", [sentences("forklift")])
    data = good.read_bytes()
    start = data.rindex(b"startxref")
    (folder / "badxref.pdf").write_bytes(data[:start] + b"startxref\n99999\n%%EOF\n")
    (folder / "cut.pdf").write_bytes(data[: len(data) // 2])
    (folder / "junk.pdf").write_bytes(b"%PDF-1.4\n" + random.Random(1).randbytes(500))
    (folder / "noise.pdf").write_bytes(random.Random(0).randbytes(3000))
    return {p.name: p for p in folder.glob("*.pdf")}


def test_pypdf_warnings_do_not_reach_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
):
    """pypdf's notes land in the skip reason of the file they concern, nothing on stderr."""
    import logging

    pdfs = broken_pdfs(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="ragtune.engine.ingest"):
        repaired = read_file(pdfs["badxref.pdf"])  # pypdf repairs it: kept, quietly
    assert "forklift rule number 0" in repaired.text
    assert any("startxref" in r.getMessage() for r in caplog.records)  # there were notes
    for name in ("cut.pdf", "junk.pdf", "noise.pdf"):
        with pytest.raises(InputError) as err:
            read_file(pdfs[name])
        assert err.value.where.endswith(name)
        assert "pypdf: " in err.value.message and "EOF marker not found" in err.value.message
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    # under pytest a root handler exists, so check no pypdf record escaped to it either
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]


def test_pypdf_notes_are_kept_per_file_and_logging_restored(tmp_path: Path):
    import logging

    pdfs = broken_pdfs(tmp_path)
    with pytest.raises(InputError) as err:
        read_file(pdfs["noise.pdf"])
    assert "invalid pdf header" in err.value.message
    with pytest.raises(InputError) as err:
        read_file(pdfs["cut.pdf"])
    assert "invalid pdf header" not in err.value.message  # not the previous file's notes
    logger = logging.getLogger("pypdf")
    assert logger.propagate and not logger.handlers
