"""BEIR-layout loading: what is kept, how text is built, and errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TEST_DATA

from ragtune.engine.core.errors import InputError
from ragtune.engine.core.events import Emitter, Event, Message
from ragtune.engine.evaluate.beir import IRData, load_beir


def _write(folder: Path, corpus: list, queries: list, qrels: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in corpus)
    )
    (folder / "queries.jsonl").write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in queries)
    )
    (folder / "qrels.tsv").write_text(qrels)
    return folder


CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "cats purr"},
    {"_id": "d2", "title": "", "text": "dogs bark"},
    {"_id": "d3", "text": "birds sing"},
]
QUERIES = [
    {"_id": "q1", "text": "what purrs"},
    {"_id": "q2", "text": "what barks"},
    {"_id": "q3", "text": "never judged"},
    {"_id": "q4", "text": "judged not relevant only"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\nq4\td3\t0\n"


def test_loads_judged_queries_and_titled_text(tmp_path: Path) -> None:
    data = load_beir(_write(tmp_path / "set", CORPUS, QUERIES, QRELS))
    assert isinstance(data, IRData)
    assert data.corpus == {"d1": "Cats cats purr", "d2": "dogs bark", "d3": "birds sing"}
    assert data.titles == {"d1": "Cats"}
    assert data.queries == {"q1": "what purrs", "q2": "what barks"}
    assert data.relevant == {"q1": {"d1"}, "q2": {"d2"}}


def test_alternative_file_names(tmp_path: Path) -> None:
    folder = _write(tmp_path / "set", CORPUS, QUERIES, QRELS)
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("q2\td3\t1\n")  # no header is fine too
    (folder / "all.jsonl").write_text(json.dumps({"_id": "q2", "text": "birds?"}) + "\n")
    data = load_beir(folder, qrels="qrels/test.tsv", queries="all.jsonl")
    assert data.queries == {"q2": "birds?"}
    assert data.relevant == {"q2": {"d3"}}


def test_unknown_corpus_ids_warn_and_are_skipped(tmp_path: Path) -> None:
    seen: list[Event] = []
    qrels = QRELS + "q1\tgone\t1\nq1\talso-gone\t1\n"
    data = load_beir(_write(tmp_path / "set", CORPUS, QUERIES, qrels), events=Emitter(seen.append))
    assert data.relevant["q1"] == {"d1"}
    warnings = [e for e in seen if isinstance(e, Message) and e.level == "warning"]
    assert len(warnings) == 1
    assert "2 judgment(s)" in warnings[0].text and "'gone'" in warnings[0].text
    assert warnings[0].where.endswith("qrels.tsv:6")


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "where", "words"),
    [
        ([*CORPUS, "{not json"], QUERIES, QRELS, "corpus.jsonl:4", "not valid JSON"),
        (CORPUS, [*QUERIES, "[1, 2]"], QRELS, "queries.jsonl:5", "JSON object"),
        ([{"title": "x", "text": "y"}], QUERIES, QRELS, "corpus.jsonl:1", "'_id'"),
        ([{"_id": "d1"}], QUERIES, QRELS, "corpus.jsonl:1", "'text'"),
        ([*CORPUS, CORPUS[0]], QUERIES, QRELS, "corpus.jsonl:4", "duplicate _id 'd1'"),
        (CORPUS, QUERIES, QRELS + "q1 d1 1\n", "qrels.tsv:6", "3 tab-separated"),
        (CORPUS, QUERIES, QRELS + "q1\td2\thigh\n", "qrels.tsv:6", "not a number"),
        (CORPUS, QUERIES, "query-id\tcorpus-id\tscore\nq9\td1\t1\n", "qrels.tsv", "no query"),
    ],
)
def test_malformed_input_names_file_and_line(
    tmp_path: Path, corpus: list, queries: list, qrels: str, where: str, words: str
) -> None:
    folder = _write(tmp_path / "set", corpus, queries, qrels)
    with pytest.raises(InputError) as info:
        load_beir(folder)
    assert info.value.where.endswith(where)
    assert words in info.value.message


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels.tsv"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    folder = _write(tmp_path / "set", CORPUS, QUERIES, QRELS)
    (folder / missing).unlink()
    with pytest.raises(InputError) as info:
        load_beir(folder)
    assert info.value.where == str(folder / missing)
    assert "not found" in info.value.message and info.value.hint


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder not found"):
        load_beir(tmp_path / "nope")


def test_real_collection_counts() -> None:
    data = load_beir(TEST_DATA / "medline_slice")
    assert len(data.corpus) == 100
    assert len(data.queries) == 5
    assert sum(len(v) for v in data.relevant.values()) == 60
    assert data.titles == {}


def _quote_run(tmp_path: Path, model: Path) -> tuple[Path, Path]:
    """A workspace with three chunks, a model saved inside it, and two questions labelled by
    quoting their answers."""
    import shutil

    from ragtune.engine.core.records import Chunk, chunk_id_for, write_chunks
    from ragtune.engine.core.workspace import Workspace

    ws = Workspace.create(tmp_path / "runs" / "r")
    texts = {
        "docs/forklifts.md": "Forklift batteries are charged in bay 3 after every shift.",
        "docs/reefers.md": "Reefer containers may stay off power for at most two hours.",
        "docs/leave.md": "Annual leave requests go to the shift manager two weeks ahead.",
    }
    write_chunks(
        ws.chunks_path,
        [Chunk(chunk_id=chunk_id_for(s, t), doc_id=s, text=t, source=s) for s, t in texts.items()],
    )
    shutil.copytree(model, ws.embedder_dir)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "where are forklift batteries charged"}\n'
        '{"_id": "q2", "text": "how long can a reefer be unplugged"}\n'
    )
    (labels / "answers.tsv").write_text(
        "query-id\tsource-file\tquote\n"
        "q1\tforklifts.md\tcharged in bay 3\n"
        "q2\treefers.md\tat most two hours\n"
    )
    return ws.root, labels


def test_cli_eval_reads_quote_labelled_questions(
    tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ragtune.engine.cli import main

    root, labels = _quote_run(tmp_path, tiny_bert)
    model = root / "models" / "embedder"
    # The model's own workspace holds the chunks the quotes are found in ...
    assert main(["eval", str(model), str(labels), "--dims", "64,32", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"dim_64_cosine_ndcg@10", "dim_32_cosine_ndcg@10"} <= scores.keys()
    # ... any other model names the workspace with --chunks.
    argv = ["eval", str(tiny_bert), str(labels), "--chunks", str(root), "--dims", "64", "--json"]
    assert main(argv) == 0
    assert "dim_64_cosine_ndcg@10" in json.loads(capsys.readouterr().out)
    assert main(["eval", str(tiny_bert), str(labels), "--dims", "64"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "--chunks" in err and "answers.tsv" in err
