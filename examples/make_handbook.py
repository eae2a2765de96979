#!/usr/bin/env python3
"""Rebuild the DOCX and PDF documents of the example handbook.

The text of these documents lives in ``examples/handbook_src/*.md`` (a tiny
Markdown subset, see ``parse``); this script renders it into
``examples/handbook/`` with python-docx and reportlab:

    python examples/make_handbook.py            # build everything
    python examples/make_handbook.py --check    # build, then print extracted text stats
    python examples/make_handbook.py --verify-eval   # build, then check handbook_eval/answers.tsv

The Markdown, plain-text files in ``handbook/`` are written by hand and are not
touched by this script.

Source format (one block per line, blank lines between blocks):
    # Heading        -> Heading 1 (DOCX) / large section heading (PDF)
    ## Heading       -> Heading 2 (DOCX) / section heading (PDF)
    - item           -> bulleted list item
    anything else    -> a body paragraph (keep each paragraph on one line)
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
SRC_DIR = HERE / "handbook_src"
OUT_DIR = HERE / "handbook"

COMPANY = "Hallbrook Cold-Chain Logistics"
FIXED_DATE = _dt.datetime(2024, 10, 1, 9, 0, 0)  # stable metadata for rebuilds

# source stem -> output format
DOCUMENTS = {
    "hr-leave-and-working-time-policy": "docx",
    "customer-sla-schedule": "docx",
    "gdp-pharma-compliance-manual": "pdf",
    "wms-it-runbooks": "pdf",
}


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------


def parse(text: str) -> list[tuple[str, str]]:
    """Return a list of (kind, text) blocks; kind in h1, h2, li, p."""
    blocks: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("## "):
            blocks.append(("h2", line[3:].strip()))
        elif line.startswith("# "):
            blocks.append(("h1", line[2:].strip()))
        elif line.startswith("- "):
            blocks.append(("li", line[2:].strip()))
        else:
            blocks.append(("p", line))
    return blocks


def doc_title(blocks: list[tuple[str, str]]) -> str:
    return next(t for k, t in blocks if k == "h1")


def doc_reference(blocks: list[tuple[str, str]]) -> str:
    """Pick 'XX-YYY-000' out of the 'Document reference ...' paragraph."""
    for kind, txt in blocks:
        if kind == "p" and txt.startswith("Document reference "):
            return txt[len("Document reference ") :].split(",")[0].strip()
    return ""


# --------------------------------------------------------------------------
# DOCX
# --------------------------------------------------------------------------


def build_docx(blocks: list[tuple[str, str]], out: Path) -> None:
    from docx import Document
    from docx.shared import Pt

    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name = "Calibri"
    normal.font.size = Pt(11)

    title = doc_title(blocks)
    ref = doc_reference(blocks)
    props = doc.core_properties
    props.title = title
    props.author = f"{COMPANY} – Quality Office"
    props.subject = ref
    props.created = FIXED_DATE
    props.modified = FIXED_DATE
    props.last_modified_by = "make_handbook.py"
    props.revision = 1

    section = doc.sections[0]
    header_par = section.header.paragraphs[0]
    header_par.text = f"{COMPANY} | {title} | {ref}"

    for kind, txt in blocks:
        if kind == "h1":
            doc.add_heading(txt, level=1)
        elif kind == "h2":
            doc.add_heading(txt, level=2)
        elif kind == "li":
            doc.add_paragraph(txt, style="List Bullet")
        else:
            doc.add_paragraph(txt)

    # python-docx stamps zip members with the current time; rewrite the archive
    # with a fixed timestamp so that rebuilding gives byte-identical files.
    import io
    import zipfile

    buf = io.BytesIO()
    doc.save(buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))


# --------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------


def _pdf_text(s: str) -> str:
    # Standard Type 1 fonts are WinAnsi-encoded: map the few characters that
    # have no glyph there, then escape for reportlab's mini-markup.
    s = s.replace("\u2212", "-")
    return escape(s)


def build_pdf(blocks: list[tuple[str, str]], out: Path) -> None:
    from reportlab.lib.enums import TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        BaseDocTemplate,
        Frame,
        ListFlowable,
        ListItem,
        PageTemplate,
        Paragraph,
        Spacer,
    )

    title = doc_title(blocks)
    ref = doc_reference(blocks)

    ss = getSampleStyleSheet()
    body = ParagraphStyle(
        "HBBody",
        parent=ss["BodyText"],
        fontName="Helvetica",
        fontSize=10.5,
        leading=14.5,
        alignment=TA_LEFT,
        spaceAfter=7,
    )
    h_title = ParagraphStyle(
        "HBTitle",
        parent=ss["Title"],
        fontName="Helvetica-Bold",
        fontSize=19,
        leading=24,
        spaceAfter=10,
        alignment=TA_LEFT,
    )
    h1 = ParagraphStyle(
        "HBH1",
        parent=ss["Heading1"],
        fontName="Helvetica-Bold",
        fontSize=15,
        leading=19,
        spaceBefore=12,
        spaceAfter=6,
    )
    h2 = ParagraphStyle(
        "HBH2",
        parent=ss["Heading2"],
        fontName="Helvetica-Bold",
        fontSize=12.5,
        leading=16,
        spaceBefore=10,
        spaceAfter=4,
        keepWithNext=1,
    )

    page_w, page_h = A4

    # Header is drawn before the page body and footer after it, so that text
    # extraction returns: running title, page content, footer -- in that order.
    def page_header(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 8.5)
        canvas.drawString(20 * mm, page_h - 12 * mm, f"{COMPANY} - {title} ({ref})")
        canvas.line(20 * mm, page_h - 14 * mm, page_w - 20 * mm, page_h - 14 * mm)
        canvas.restoreState()

    def page_footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 8.5)
        canvas.drawString(
            20 * mm, 10 * mm, "Controlled copy in the document system; uncontrolled when printed."
        )
        canvas.drawRightString(page_w - 20 * mm, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()

    story = []
    first_h1 = True
    pending_items: list = []

    def flush_list():
        if pending_items:
            story.append(
                ListFlowable(
                    [ListItem(Paragraph(_pdf_text(t), body), leftIndent=12) for t in pending_items],
                    bulletType="bullet",
                    start="\u2022",
                )
            )
            pending_items.clear()

    for kind, txt in blocks:
        if kind != "li":
            flush_list()
        if kind == "h1":
            story.append(Paragraph(_pdf_text(txt), h_title if first_h1 else h1))
            first_h1 = False
        elif kind == "h2":
            story.append(Paragraph(_pdf_text(txt), h2))
        elif kind == "li":
            pending_items.append(txt)
        else:
            story.append(Paragraph(_pdf_text(txt), body))
    flush_list()
    story.append(Spacer(1, 6))

    doc = BaseDocTemplate(
        str(out),
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=22 * mm,
        bottomMargin=20 * mm,
        title=title,
        author=f"{COMPANY} - Quality Office",
        subject=ref,
        creator="make_handbook.py",
        invariant=1,
    )
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
    doc.addPageTemplates(
        [PageTemplate(id="page", frames=[frame], onPage=page_header, onPageEnd=page_footer)]
    )
    doc.build(story)


# --------------------------------------------------------------------------
# extraction check
# --------------------------------------------------------------------------


def extract_text(path: Path) -> str:
    """Plain text of a built document (same extractors the eval check uses)."""
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(p.extract_text() or "" for p in PdfReader(str(path)).pages)
    if path.suffix == ".docx":
        from docx import Document

        return "\n".join(p.text for p in Document(str(path)).paragraphs)
    return path.read_text(encoding="utf-8")


def _norm(s: str) -> str:
    return " ".join(s.split())


def verify_eval(handbook: Path, answers: Path) -> int:
    """Check every quote of answers.tsv: 8-20 words, found exactly once (after
    whitespace normalisation) in the extracted text of its own file and in no
    other file of the handbook. Returns the number of failures."""
    texts = {
        p.name: _norm(extract_text(p))
        for p in sorted(handbook.iterdir())
        if p.suffix in {".md", ".txt", ".pdf", ".docx"}
    }
    rows = [
        line.rstrip("\n").split("\t")
        for line in answers.read_text(encoding="utf-8").splitlines()[1:]
        if line.strip()
    ]
    failures = 0
    for qid, src, quote in rows:
        q = _norm(quote)
        problems = []
        if src not in texts:
            problems.append("unknown source file")
        elif texts[src].count(q) != 1:
            problems.append(f"found {texts[src].count(q)} times in its file")
        if not 8 <= len(q.split()) <= 20:
            problems.append(f"{len(q.split())} words")
        elsewhere = [name for name, t in texts.items() if name != src and q in t]
        if elsewhere:
            problems.append(f"also in {', '.join(elsewhere)}")
        if problems:
            failures += 1
            print(f"FAIL {qid} ({src}): {'; '.join(problems)}: {quote}")
    print(f"verified {len(rows)} quotes against {len(texts)} files: {failures} failure(s)")
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=SRC_DIR)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--check", action="store_true", help="print size/word stats of the built files")
    ap.add_argument(
        "--verify-eval",
        type=Path,
        nargs="?",
        const=HERE / "handbook_eval" / "answers.tsv",
        metavar="ANSWERS_TSV",
        help="after building, check the eval quotes against the extracted text",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    for stem, fmt in DOCUMENTS.items():
        blocks = parse((args.src / f"{stem}.md").read_text(encoding="utf-8"))
        out = args.out / f"{stem}.{fmt}"
        (build_docx if fmt == "docx" else build_pdf)(blocks, out)
        msg = f"wrote {out.relative_to(args.out.parent) if out.is_relative_to(args.out.parent) else out}"
        if args.check:
            text = extract_text(out)
            extra = ""
            if fmt == "pdf":
                from pypdf import PdfReader

                extra = f", {len(PdfReader(str(out)).pages)} pages"
            msg += f"  ({out.stat().st_size / 1024:.0f} KB, {len(text.split())} extracted words{extra})"
        print(msg)

    if args.verify_eval and verify_eval(args.out, args.verify_eval):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
