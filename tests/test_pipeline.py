"""End to end on a tiny random model: every stage, skip on re-run, cancel and resume, CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ragtune.engine.api import run_pipeline
from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.core.errors import Cancelled, ConfigError
from ragtune.engine.core.events import Emitter, StageFinished, StageSkipped, TrainLog, read_events
from tests.generate.test_llm_free import TEXTS

TOPICS = [
    "reefer container pre-cooling",
    "forklift battery changes",
    "annual leave requests",
    "pallet probe checks",
    "dock door scheduling",
    "pharma quarantine cages",
]


def write_docs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, topic in enumerate(TOPICS):
        paras = [
            f"## {topic.title()} rule {j}\n\n"
            f"The {topic} rule {j} says that staff on shift {j} record value {i * 10 + j} "
            f"in system {topic.split()[0].upper()}-{j}. Supervisors confirm the {topic} entry "
            f"within {j + 2} hours. A missed {topic} entry opens a ticket for team {i}-{j}."
            for j in range(6)
        ]
        (folder / f"doc{i}.md").write_text(f"# {topic.title()}\n\n" + "\n\n".join(paras))
    heading, text = TEXTS[0]
    (folder / "extra.txt").write_text(f"{heading}\n\n{text}\n")


def tiny_config(tmp_path: Path, model: Path, **embedder: object) -> RunConfig:
    write_docs(tmp_path / "docs")
    data = {
        "run": {"name": "t"},
        "sources": {"paths": ["docs"]},
        "chunking": {"max_tokens": 64, "overlap_tokens": 8, "min_tokens": 8},
        "data": {"eval_fraction": 0.2},
        "embedder": {
            "base_model": str(model),
            "batch_size": 8,
            "epochs": 1.0,
            "learning_rate": 1e-4,
            "matryoshka_dims": [64, 32, 16],
            "metric_for_best_model": "eval_dim_16_cosine_ndcg@10",
            **embedder,
        },
        "reranker": {"enabled": False},
    }
    path = tmp_path / "config.toml"
    RunConfig.from_dict(data).save(path)
    return load_config(path)


@pytest.mark.slow
def test_full_run_then_rerun_skips_everything(tmp_path: Path, tiny_bert: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_bert)
    seen: list = []
    ws = run_pipeline(cfg, events=Emitter(seen.append))
    finished = [e.stage for e in seen if isinstance(e, StageFinished)]
    assert finished == [
        "ingest",
        "index",
        "generate",
        "prepare",
        "train",
        "evaluate",
        "deploy",
        "export",
    ]
    assert any(isinstance(e, TrainLog) and e.loss is not None for e in seen)

    metrics = json.loads(ws.metrics_path.read_text())["embedder"]
    assert metrics["dims"] == [64, 32, 16]
    held = metrics["held-out"]
    assert held["queries"] > 0
    assert "dim_16_cosine_ndcg@10" in held["tuned"]
    assert "| 64 | ndcg@10 |" in ws.report_path.read_text()
    # What training added at each size, with the interval the held-out queries allow.
    gains = held["gains"]
    assert gains["against"] == "base + rotation" and gains["queries"] == held["queries"]
    for dim in ("64", "32", "16"):
        g = gains["by_dim"][dim]
        assert g["low"] <= g["mean"] <= g["high"]
        rows = {(r["dim"], r["metric"]): r for r in held["rows"]}
        row = rows[(int(dim), "ndcg@10")]
        assert g["mean"] == pytest.approx(row["tuned"] - row["base_rotated"], abs=1e-9)
    assert "paired-bootstrap interval" in ws.report_path.read_text()

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(ws.embedder_dir), device="cpu")
    assert model.encode(["forklift battery"]).shape == (1, 64)
    card = (ws.embedder_dir / "README.md").read_text()
    assert "Fine-tuned with ragtune" in card and "truncate_dim=16" in card

    replay = load_config(ws.config_path)
    assert replay.workspace_dir == ws.root
    seen2: list = []
    run_pipeline(replay, events=Emitter(seen2.append))
    assert {e.stage for e in seen2 if isinstance(e, StageSkipped)} >= {
        "ingest",
        "generate",
        "prepare",
        "train",
        "evaluate",
    }
    assert not [e for e in seen2 if isinstance(e, StageFinished)]
    kinds = {e.kind for e in read_events(ws.events_path)}
    assert {"stage_started", "stage_finished", "progress", "train_log", "eval_row"} <= kinds


@pytest.mark.slow
def test_cancel_keeps_a_checkpoint_and_the_next_run_resumes(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    cfg = tiny_config(tmp_path, tiny_modernbert, epochs=3.0, eval_strategy="epoch")
    cancel = threading.Event()

    def stop_after_first_eval(event: object) -> None:
        if isinstance(event, TrainLog) and event.split == "eval":
            cancel.set()

    with pytest.raises(Cancelled):
        run_pipeline(cfg, events=Emitter(stop_after_first_eval), cancel=cancel)
    ws_root = cfg.workspace_dir
    assert list((ws_root / "checkpoints" / "embedder").glob("checkpoint-*"))
    assert not (ws_root / "models" / "embedder").exists()

    seen: list = []
    run_pipeline(
        cfg, events=Emitter(seen.append), stages=["ingest", "generate", "prepare", "train"]
    )
    assert any("resuming from checkpoint-" in getattr(e, "text", "") for e in seen)
    steps = [e.step for e in seen if isinstance(e, TrainLog)]
    assert steps and min(steps) > 1
    assert (ws_root / "models" / "embedder" / "config.json").exists()


def test_nothing_to_read_is_a_config_error(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict({"run": {"workspace": str(tmp_path / "w")}})
    with pytest.raises(ConfigError, match="sources"):
        run_pipeline(cfg)


def test_a_benchmark_that_cannot_be_read_stops_the_run_before_training(
    tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ragtune.engine.cli import main

    cfg = tiny_config(tmp_path, tiny_bert)
    cfg.eval.benchmark = "docs"  # documents, not labelled questions
    cfg.save(tmp_path / "my.toml")
    assert main(["run", str(tmp_path / "my.toml")]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "eval.benchmark" in err and "not a labelled folder" in err and "qrels.tsv" in err
    assert not (tmp_path / "runs" / "t" / "chunks.parquet").exists()


def test_cli_reports_a_bad_config_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ragtune.engine.cli import main

    bad = tmp_path / "c.toml"
    bad.write_text('[embedder]\nloss = "triplet"\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "embedder.loss" in err and "'mnrl'" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2


def test_cli_eval_prints_every_dim_as_json(
    tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ragtune.engine.cli import main

    folder = tmp_path / "beir"
    folder.mkdir()
    docs = [(f"d{i}", text) for i, (_, text) in enumerate(TEXTS)]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in docs)
    )
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "forklift inspection"}) + "\n"
    )
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert main(["eval", str(tiny_bert), str(folder), "--dims", "64,16", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"dim_64_cosine_ndcg@10", "dim_16_cosine_ndcg@10"} <= set(scores)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
