"""Change one kind of setting, rerun the real pipeline: exactly the stages that read it rerun.

One finished tiny run (random 2-layer BERT embedder and reranker, LLM-free rows) is made
once per module; each test works on a copy of that workspace, so a rerun costs only the
stages it really redoes. Which stages ran is read from the emitted events and from
``events.jsonl``; whether the model changed from the saved weights' bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragtune.engine.api import run_pipeline
from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.core.errors import Cancelled
from ragtune.engine.core.events import (
    Emitter,
    Message,
    StageSkipped,
    StageStarted,
    TrainLog,
    read_events,
)
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.stages import STAGES
from tests.test_pipeline import tiny_config

pytestmark = pytest.mark.slow

RERANKER = {
    "enabled": True,
    "epochs": 1.0,
    "batch_size": 8,
    "num_negatives": 1,
    "random_negatives": 1,
    "range_min": 0,
    "range_max": 8,
    "top_k": 8,
    "max_length": 64,
    "eval_strategy": "no",
}


def _reranker_settings(model: Path) -> dict[str, Any]:
    """The tiny reranker: the random BERT with a fresh head, trained even on few queries."""
    from ragtune.engine.config.reranker import RerankerConfig

    out: dict[str, Any] = {**RERANKER, "base_model": str(model)}
    if "min_queries_fresh_head" in RerankerConfig.__dataclass_fields__:
        out["min_queries_fresh_head"] = 0
    return out


def _config(folder: Path, model: Path, *, reranker: bool = True, **embedder: Any) -> RunConfig:
    cfg = tiny_config(folder, model, **embedder)
    if reranker:
        data = cfg.to_dict()
        data["reranker"] = _reranker_settings(model)
        cfg = RunConfig.from_dict(data)
        cfg.base_dir = folder
    return cfg


class Run:
    """One pipeline run's record: which stages started and were skipped, and the messages."""

    def __init__(self, cfg: RunConfig, **kw: Any) -> None:
        self.events: list[Any] = []
        self.ws = run_pipeline(cfg, events=Emitter(self.events.append), **kw)

    @property
    def started(self) -> list[str]:
        return [e.stage for e in self.events if isinstance(e, StageStarted)]

    @property
    def skipped(self) -> list[str]:
        return [e.stage for e in self.events if isinstance(e, StageSkipped)]

    def texts(self) -> str:
        return "\n".join(e.text for e in self.events if isinstance(e, Message))

    def train_steps(self) -> list[int]:
        return [
            e.step
            for e in self.events
            if isinstance(e, TrainLog) and e.stage == "train" and e.split == "train"
        ]


def weights(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """A workspace where every stage is done (reranker included)."""
    folder = tmp_path_factory.mktemp("finished")
    run = Run(_config(folder, tiny_bert))
    assert run.started == list(STAGES)
    return run.ws.root


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the finished workspace (mtimes kept, so sources still match)."""
    root = tmp_path / "ws"
    shutil.copytree(finished, root)
    yield root


def changed(root: Path, **settings: Any) -> RunConfig:
    """The workspace's own config with ``section.key`` settings changed, as a user edits it."""
    cfg = load_config(root / "config.toml")
    for dotted, value in settings.items():
        node: Any = cfg
        *path, key = dotted.split("__")
        for part in path:
            node = getattr(node, part)
        setattr(node, key, value)
    return cfg


def status(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """``ragtune status <workspace>`` as a user reads it."""
    from ragtune.engine.cli import main

    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    rows = [line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line]
    return {stage: state for stage, state in rows}


def test_nothing_changed_skips_every_stage(copy: Path) -> None:
    before = weights(copy / "models" / "embedder")
    run = Run(changed(copy))
    assert run.started == []
    assert run.skipped == list(STAGES)
    assert weights(copy / "models" / "embedder") == before
    logged = [e for e in read_events(copy / "events.jsonl") if isinstance(e, StageSkipped)]
    assert [e.stage for e in logged][-len(STAGES) :] == list(STAGES)


def test_throughput_knobs_rerun_nothing(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = changed(
        copy,
        generation__llm__concurrency=3,
        generation__llm__timeout=5.0,
        generation__max_failed_share=0.5,
        embedder__device="cpu",
        embedder__save_total_limit=1,
        reranker__device="cpu",
        eval__batch_size=7,
        distributed__backend="gloo",
    )
    cfg.save(copy / "config.toml")
    assert set(status(copy, capsys).values()) == {"done"}
    run = Run(cfg)
    assert run.started == []
    assert run.skipped == list(STAGES)


def test_settings_the_recipe_does_not_read_rerun_nothing(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = changed(
        copy,
        embedder__pseudo_label_model="some/other-cross-encoder",
        embedder__gpl_score_scale=5.0,
        embedder__lora_r=4,
        embedder__negative_range_max=50,
        embedder__mini_batch_size=4,
        reranker__eval_steps=7,
    )
    assert cfg.embedder.loss != "gpl" and not cfg.embedder.lora
    cfg.save(copy / "config.toml")
    assert set(status(copy, capsys).values()) == {"done"}
    assert Run(cfg).started == []
    # The same knob counts as soon as the recipe reads it.
    cfg = changed(copy, embedder__lora=True, embedder__lora_r=4)
    cfg.save(copy / "config.toml")
    assert status(copy, capsys)["train"].startswith("stale")
    assert "embedder.lora_r" in status(copy, capsys)["train"]


@pytest.mark.parametrize(
    "setting",
    [{"embedder__learning_rate": 5e-4}, {"embedder__epochs": 2.0}],
    ids=["learning_rate", "epochs"],
)
def test_a_training_setting_retrains_from_scratch_and_reruns_what_reads_the_model(
    copy: Path, setting: dict[str, Any]
) -> None:
    marker = copy / "checkpoints" / "embedder" / "ragtune_fingerprint"
    old_marker = marker.read_text()
    old_weights = weights(copy / "models" / "embedder")
    old_reranker = weights(copy / "models" / "reranker")
    old_steps = Workspace(copy).stage_summary("train")["steps"]

    run = Run(changed(copy, **setting))

    assert run.started == ["train", "evaluate", "deploy", "rerank", "export"]
    assert run.skipped == ["ingest", "index", "generate", "prepare"]
    # From scratch: the old checkpoints were wiped, not resumed.
    assert "resuming from" not in run.texts()
    assert min(run.train_steps()) == 1
    assert marker.read_text() != old_marker
    new_steps = Workspace(copy).stage_summary("train")["steps"]
    epochs = setting.get("embedder__epochs", 1.0)
    assert new_steps == old_steps * epochs
    checkpoints = sorted(p.name for p in marker.parent.glob("checkpoint-*"))
    assert f"checkpoint-{new_steps}" in checkpoints
    assert weights(copy / "models" / "embedder") != old_weights
    # The reranker mines with the new embedder, so it is trained again too.
    assert weights(copy / "models" / "reranker") != old_reranker


def test_a_reranker_setting_reruns_only_the_reranker(copy: Path) -> None:
    old_embedder = weights(copy / "models" / "embedder")
    run = Run(changed(copy, reranker__learning_rate=1e-3))
    assert run.started == ["rerank", "export"]
    assert weights(copy / "models" / "embedder") == old_embedder


def test_a_query_prompt_retrains_and_travels_with_the_model(copy: Path) -> None:
    run = Run(changed(copy, embedder__query_prompt="query: "))
    assert run.started == ["train", "evaluate", "deploy", "rerank", "export"]
    import json

    st_config = json.loads((copy / "models/embedder/config_sentence_transformers.json").read_text())
    assert st_config["prompts"]["query"] == "query: "


def test_a_moved_or_cloned_project_is_the_same_run(tmp_path: Path, tiny_bert: Path) -> None:
    """Chunk ids, the held-out split and the fingerprints come from names inside the
    project, so README numbers reproduce in any clone and a moved project re-runs nothing."""
    from ragtune.engine.core.records import read_chunks
    from ragtune.engine.data.prepare import load_prepared

    first = tmp_path / "a" / "project"
    first.mkdir(parents=True)
    tiny_config(first, tiny_bert, epochs=0.2).save(first / "my.toml")
    stages = ["ingest", "generate", "prepare", "train", "evaluate"]
    ws = Run(load_config(first / "my.toml"), stages=stages).ws
    chunk_ids = [c.chunk_id for c in read_chunks(ws.chunks_path)]
    held_out = load_prepared(ws).eval_chunks
    assert not any(str(tmp_path) in c.source for c in read_chunks(ws.chunks_path))

    clone = tmp_path / "b" / "elsewhere" / "project"
    shutil.copytree(first, clone, ignore=shutil.ignore_patterns("runs"))
    fresh = Run(load_config(clone / "my.toml"), stages=["ingest", "generate", "prepare"]).ws
    assert [c.chunk_id for c in read_chunks(fresh.chunks_path)] == chunk_ids
    assert load_prepared(fresh).eval_chunks == held_out

    moved = tmp_path / "c" / "project"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert Run(load_config(moved / "my.toml"), stages=stages).started == []


def test_a_chunking_setting_reruns_everything_from_ingest(copy: Path) -> None:
    old_chunks = (copy / "chunks.parquet").read_bytes()
    old_weights = weights(copy / "models" / "embedder")
    run = Run(changed(copy, chunking__max_tokens=48))
    assert run.started == list(STAGES)
    assert (copy / "chunks.parquet").read_bytes() != old_chunks
    assert weights(copy / "models" / "embedder") != old_weights


def test_k_values_rerun_only_evaluation_and_export(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    old_weights = weights(copy / "models" / "embedder")
    cfg = changed(copy, eval__k_values=[1, 2, 10, 100])
    cfg.save(copy / "config.toml")
    shown = status(copy, capsys)
    assert shown["evaluate"] == "stale (eval.k_values)"
    assert shown["export"] == "stale (evaluate (upstream))"
    assert {shown[s] for s in ("ingest", "generate", "prepare", "train", "rerank")} == {"done"}

    run = Run(cfg)
    assert run.started == ["evaluate", "export"]
    assert weights(copy / "models" / "embedder") == old_weights
    tuned = json.loads((copy / "metrics.json").read_text())["embedder"]["held-out"]["tuned"]
    assert "dim_16_cosine_accuracy@2" in tuned
    assert set(status(copy, capsys).values()) == {"done"}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage_split(root: Path) -> Path:
    arrow = next((root / "dataset" / "splits" / "train").glob("*.arrow"))
    arrow.unlink()
    return arrow


# What a user (or a full disk, or a cleanup script) does to one output of a finished run, and
# the words ``ragtune status`` must then say. Only the damaged stage and what reads what it
# produced run again: the rebuilt outputs here match the old ones, so nothing downstream does.
DAMAGE = {
    "chunks deleted": ("ingest", lambda r: (r / "chunks.parquet").unlink(), "is missing"),
    "chunks truncated": ("ingest", lambda r: _truncate(r / "chunks.parquet"), "cannot be read"),
    "rows deleted": ("generate", lambda r: (r / "generated.jsonl").unlink(), "is missing"),
    "split damaged": ("prepare", _damage_split, "misses"),
    "metrics corrupt": ("evaluate", lambda r: _truncate(r / "metrics.json"), "cannot be read"),
    "reranker deleted": ("rerank", lambda r: shutil.rmtree(r / "models" / "reranker"), "missing"),
}


@pytest.mark.parametrize("case", list(DAMAGE), ids=list(DAMAGE))
def test_a_missing_or_damaged_output_is_rebuilt(
    case: str, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stage, damage, words = DAMAGE[case]
    damage(copy)
    shown = status(copy, capsys)
    assert shown[stage].startswith("to do (")
    assert words in shown[stage] and "the next run rebuilds it" in shown[stage]
    untouched = STAGES[: STAGES.index(stage)]
    assert {shown[s] for s in untouched} <= {"done"}

    run = Run(changed(copy))
    assert run.started[0] == stage
    assert not set(run.started) & set(untouched)
    assert f"rebuilding {stage}: " in run.texts()
    if stage == "evaluate":
        # The damaged metrics.json lost the deploy table and the reranker's results too.
        assert run.started[:3] == ["evaluate", "deploy", "rerank"]
        assert set(run.started) <= {"evaluate", "deploy", "rerank", "export"}
    elif stage != "rerank":
        assert run.started == [stage], "a rebuild that produced the same output reruns nothing"
    assert set(status(copy, capsys).values()) == {"done"}


def test_deleted_model_weights_retrain_and_rerun_what_reads_the_model(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "models" / "embedder" / "model.safetensors").unlink()
    shown = status(copy, capsys)
    assert (
        shown["train"] == "to do (models/embedder has no model weights, the next run rebuilds it)"
    )
    run = Run(changed(copy))
    assert run.started[0] == "train" and "prepare" not in run.started
    assert (copy / "models" / "embedder" / "model.safetensors").is_file()
    assert set(status(copy, capsys).values()) == {"done"}


def test_evaluation_encodes_each_corpus_once_per_model(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Base, base + rotation, fine-tuned, BM25 and both hybrids from two corpus encodes: the
    rotation is a linear map of the base model's embeddings, the hybrids reuse the rankings."""
    import ragtune.engine.embedder.rotation as rotation
    import ragtune.engine.evaluate.ir as ir

    encodes: list[tuple[str, int]] = []
    real = ir._encode

    def counted(model: Any, texts: list[str], *, kind: str, **kw: Any) -> Any:
        encodes.append((kind, len(texts)))
        return real(model, texts, kind=kind, **kw)

    def no_second_fit(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the rotation was fitted on a second encode of the corpus")

    monkeypatch.setattr(ir, "_encode", counted)
    monkeypatch.setattr(rotation, "fit_rotation", no_second_fit)
    # The models and chunks did not change: the embeddings the first run saved are read.
    run = Run(changed(copy, eval__k_values=[1, 10, 100]))
    assert run.started == ["evaluate", "export"]
    assert encodes == []
    # Without them, each corpus is encoded once per model.
    shutil.rmtree(copy / "embeddings")
    run = Run(changed(copy, eval__k_values=[1, 10]))
    assert run.started == ["evaluate", "export"]
    corpus = [n for kind, n in encodes if kind == "document"]
    assert len(corpus) == 2, encodes
    metrics = json.loads((copy / "metrics.json").read_text())["embedder"]["held-out"]
    assert {"base", "base_rotated", "tuned"} <= set(metrics)


def test_status_says_to_do_and_running_truthfully(
    tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, tiny_bert, reranker=False)
    root = cfg.workspace_dir
    root.mkdir(parents=True)
    cfg.for_workspace(root).save(root / "config.toml")
    shown = status(root, capsys)
    assert shown == {**dict.fromkeys(STAGES, "to do"), "rerank": "off (switched off in the config)"}

    during: dict[str, str] = {}

    def look(event: object) -> None:
        if isinstance(event, StageStarted) and event.stage == "train":
            during.update(status(root, capsys))

    run_pipeline(cfg, events=Emitter(look), stages=["ingest", "generate", "prepare", "train"])
    assert during["train"] == f"running (pid {os.getpid()})"
    assert [during[s] for s in ("ingest", "generate", "prepare")] == ["done"] * 3
    assert during["evaluate"] == "to do"
    after = status(root, capsys)
    assert after["train"] == "done" and after["evaluate"] == "to do"


def test_a_cancelled_train_resumes_its_checkpoint_when_only_a_throughput_knob_changed(
    tmp_path: Path, tiny_bert: Path
) -> None:
    cfg = _config(tmp_path, tiny_bert, reranker=False, epochs=2.0)
    stages = ["ingest", "generate", "prepare", "train"]
    cancel = threading.Event()

    def stop_after_first_eval(event: object) -> None:
        if isinstance(event, TrainLog) and event.split == "eval":
            cancel.set()

    with pytest.raises(Cancelled):
        run_pipeline(cfg, events=Emitter(stop_after_first_eval), cancel=cancel, stages=stages)
    root = cfg.workspace_dir
    first = sorted((root / "checkpoints" / "embedder").glob("checkpoint-*"))
    assert first and Workspace(root).stage_state("train") is None

    # A throughput knob changed: the same training, so the checkpoint is resumed.
    run = Run(changed(root, embedder__device="cpu"), stages=stages)
    assert run.started == ["train"]
    assert f"resuming from {first[-1].name}" in run.texts()
    assert min(run.train_steps()) > 1
    assert Workspace(root).stage_summary("train")["steps"] > int(first[-1].name.split("-")[1])


def test_a_killed_run_resumes_its_checkpoint(
    tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL in the middle of training: the lock dies with the process, the checkpoint stays."""
    cfg = _config(tmp_path, tiny_bert, reranker=False, epochs=EPOCHS_KILLED)
    path = tmp_path / "config.toml"
    cfg.save(path)
    ckpts = cfg.workspace_dir / "checkpoints" / "embedder"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragtune.engine", "run", str(path), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import time

        deadline = time.monotonic() + 120
        # Killed right after a whole checkpoint (a torn one is the xfail test below).
        while not list(ckpts.glob("checkpoint-*/trainer_state.json")):
            assert proc.poll() is None, "the run ended before it saved a checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    root = cfg.workspace_dir
    assert Workspace(root).stage_state("train") is None
    assert Workspace(root).lock().holder() is None
    newest = newest_checkpoint(ckpts)
    assert status(root, capsys)["train"] == f"partial (resumes from {newest})"

    run = Run(load_config(path), stages=["ingest", "generate", "prepare", "train"])
    assert run.started == ["train"]
    assert f"resuming from {newest}" in run.texts()
    assert min(run.train_steps()) > 1
    assert status(root, capsys)["train"] == "done"


def newest_checkpoint(folder: Path) -> str:
    """The newest checkpoint a kill left whole (with its trainer_state.json)."""
    steps = [
        int(p.parent.name.split("-")[1]) for p in folder.glob("checkpoint-*/trainer_state.json")
    ]
    return f"checkpoint-{max(steps)}"


def test_a_stopped_retrain_says_partial_not_stale(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Epochs changed, then Ctrl-C mid-training: the next run resumes the new checkpoint, so
    `status` says so instead of "stale (embedder.epochs)"."""
    cancel = threading.Event()

    def stop_after_first_eval(event: object) -> None:
        if isinstance(event, TrainLog) and event.split == "eval":
            cancel.set()

    cfg = changed(copy, embedder__epochs=3.0)
    with pytest.raises(Cancelled):
        run_pipeline(cfg, events=Emitter(stop_after_first_eval), cancel=cancel)
    newest = newest_checkpoint(copy / "checkpoints" / "embedder")
    shown = status(copy, capsys)
    assert shown["train"] == f"partial (resumes from {newest})"
    assert shown["evaluate"].startswith("stale") and shown["prepare"] == "done"

    run = Run(changed(copy, embedder__epochs=3.0))
    assert f"resuming from {newest}" in run.texts()
    assert status(copy, capsys)["train"] == "done"
    # Another setting changed after the stop: nothing resumes, and status says why.
    changed(copy, embedder__epochs=2.0).save(copy / "config.toml")
    assert status(copy, capsys)["train"] == "stale (embedder.epochs)"


EPOCHS_KILLED = 6.0


def test_a_checkpoint_torn_by_a_kill_is_not_resumed(tmp_path: Path) -> None:
    from ragtune.engine.training.arguments import last_checkpoint

    whole = tmp_path / "checkpoint-4"
    whole.mkdir()
    (whole / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "model.safetensors").write_bytes(b"torn")
    assert last_checkpoint(tmp_path) == str(whole)


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ragtune.engine.core.workspace import Workspace

    with Workspace(Path(sys.argv[1])).lock():
        print("held", flush=True)
        sys.stdin.read()
    """
)


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (st.st_mtime_ns, p.read_bytes() if p.is_file() else b"")
    out["."] = (root.stat().st_mtime_ns, b"")
    return out


def test_a_run_refused_by_the_lock_changes_no_file(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ragtune.engine.cli import main

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(copy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        other = changed(copy, embedder__learning_rate=1e-3, chunking__max_tokens=48)
        other.run.workspace = str(copy)
        other.save(tmp_path / "other.toml")
        before = snapshot(copy)
        capsys.readouterr()
        assert main(["run", str(tmp_path / "other.toml")]) != 0
        err = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal width
        assert f"pid {holder.pid}" in err and "another ragtune process" in err
        assert snapshot(copy) == before
        assert status(copy, capsys)["train"] == "done"
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    assert not (copy / ".state" / "run.lock").exists()


class FailFirstK:
    """The first ``k`` distinct passages fail once with a 500; everything else succeeds."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.failed: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, attempt: int, body: dict[str, Any]) -> str | None:
        from tests.llm_server import _between

        passage = _between(
            "\n".join(str(m.get("content", "")) for m in body["messages"]), "passage"
        )
        with self._lock:
            if attempt == 0 and passage and len(self.failed) < self.k:
                self.failed.add(passage)
                return "500"
        return None


def _llm_config(folder: Path, model: Path, url: str, **generation: Any) -> Path:
    cfg = _config(folder, model, reranker=False)
    data = cfg.to_dict()
    data["generation"] = {
        "generator": "litellm",
        **generation,
        "llm": {
            "model": "openai/fake",
            "api_base": url,
            "api_key_env": "RAGTUNE_TEST_KEY",
            "timeout": 5.0,
            "concurrency": 4,
            "max_retries": 0,
            "queries_per_chunk": 2,
            "tasks": ["queries"],
            "dedup_threshold": 1.0,
        },
    }
    path = folder / "llm.toml"
    RunConfig.from_dict(data).save(path)
    return path


TO_TRAIN = "ingest,generate,prepare,train"


def test_failed_llm_calls_leave_generate_incomplete_and_the_next_run_retries_only_them(
    tmp_path: Path,
    tiny_bert: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ragtune.engine.cli import main
    from tests.llm_server import FakeLlmServer

    monkeypatch.setenv("RAGTUNE_TEST_KEY", "sk-test")
    fault = FailFirstK(3)
    with FakeLlmServer(fault=fault) as server:
        path = _llm_config(tmp_path, tiny_bert, server.url, max_failed_share=0.5)
        capsys.readouterr()
        assert main(["run", str(path), "--stages", TO_TRAIN]) == 0
        err = " ".join(capsys.readouterr().err.split())
        assert "3 chunks failed (server_error 3)" in err
        root = load_config(path).workspace_dir
        ws = Workspace(root)
        state = ws.stage_state("generate")
        assert state is not None and state["incomplete"] == "3 chunks failed (server_error 3)"
        assert state["summary"]["failures_by_reason"] == {"server_error": 3}
        chunks = state["summary"]["chunks"]
        assert status(root, capsys)["generate"] == "incomplete (3 chunks failed (server_error 3))"
        first_steps = ws.stage_summary("train")["train_pairs"]
        calls_before = len(server.requests)
        assert calls_before == chunks

        events: list[Any] = []
        run_pipeline(load_config(path), events=Emitter(events.append), stages=TO_TRAIN.split(","))
        retried = [r.passage for r in server.requests[calls_before:]]
        assert sorted(retried) == sorted(fault.failed)
        assert [e.stage for e in events if isinstance(e, StageStarted)] == [
            "generate",
            "prepare",
            "train",
        ]
        state = ws.stage_state("generate")
        assert state is not None and "incomplete" not in state
        assert state["summary"]["failed"] == 0 and state["summary"]["skipped"] == chunks - 3
        assert ws.stage_summary("train")["train_pairs"] > first_steps
        assert status(root, capsys)["generate"] == "done"


def test_failures_over_max_failed_share_stop_the_run(
    tmp_path: Path,
    tiny_bert: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ragtune.engine.cli import main
    from tests.llm_server import FakeLlmServer

    monkeypatch.setenv("RAGTUNE_TEST_KEY", "sk-test")
    with FakeLlmServer(fault=FailFirstK(10)) as server:
        path = _llm_config(tmp_path, tiny_bert, server.url, max_failed_share=0.1)
        capsys.readouterr()
        code = main(["run", str(path), "--stages", TO_TRAIN])
        err = " ".join(capsys.readouterr().err.split())
    assert code != 0
    assert "10 chunks failed (server_error 10)" in err
    assert "generation.max_failed_share" in err and "run again" in err
    root = load_config(path).workspace_dir
    assert Workspace(root).stage_state("prepare") is None
    assert not (root / "models").exists()
    # As README says: failed LLM calls left, which the next run retries (not "partial").
    assert status(root, capsys)["generate"] == "incomplete (10 chunks failed (server_error 10))"


class ReadOnlyAfter:
    """The workspace turns read-only (a full or remounted disk, a changed owner) once
    ``trigger`` exists: from then on every new write under ``root`` fails with EROFS, as the
    kernel answers; files already open keep writing. A fake only to inject the failure:
    this machine's tests run as root, for whom chmod takes no write away."""

    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self, root: Path, trigger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import builtins
        import io

        self.root, self.trigger = str(root), trigger
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

        def guarded(real: Any, path_arg: int = 0, writes: Any = lambda *a, **k: True) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                path = args[path_arg] if len(args) > path_arg else None
                if isinstance(path, (str, Path)) and writes(*args, **kwargs):
                    self.refuse(path)
                return real(*args, **kwargs)

            return call

        def writing_mode(file: Any, mode: str = "r", *a: Any, **k: Any) -> bool:
            return any(c in k.get("mode", mode) for c in "wax+")

        def writing_flags(path: Any, flags: int, *a: Any, **k: Any) -> bool:
            return bool(flags & self.WRITE_FLAGS)

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            if os.path.exists(path):
                raise FileExistsError(17, "File exists", str(path))
            self.refuse(path)
            real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded(real_open, writes=writing_mode))
        monkeypatch.setattr(io, "open", guarded(real_open, writes=writing_mode))
        monkeypatch.setattr(os, "open", guarded(real_os_open, writes=writing_flags))
        monkeypatch.setattr(os, "mkdir", mkdir)
        for name in ("unlink", "remove", "rmdir"):
            monkeypatch.setattr(os, name, guarded(getattr(os, name)))
        for name in ("replace", "rename"):
            monkeypatch.setattr(os, name, guarded(getattr(os, name)))

    def refuse(self, path: Any) -> None:
        full = os.path.abspath(os.fspath(path))
        if full.startswith(self.root + os.sep) and self.trigger.exists():
            raise OSError(30, "Read-only file system", full)


def test_a_workspace_turned_read_only_mid_train_names_the_file_and_the_fix(
    tmp_path: Path,
    tiny_bert: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It ended with "OSError: Read-only file system: '.state/run.lock'" and "this is a bug":
    the lock's cleanup replaced the run's own error."""
    from ragtune.engine.cli import main

    cfg = _config(tmp_path, tiny_bert, reranker=False)
    path = tmp_path / "config.toml"
    cfg.save(path)
    root = cfg.workspace_dir
    ReadOnlyAfter(root, root / "checkpoints" / "embedder" / "ragtune_fingerprint", monkeypatch)
    capsys.readouterr()
    assert main(["run", str(path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: cannot write {root / 'checkpoints' / 'embedder'}" in err
    assert "Read-only file system" in err
    assert "fix: the workspace is on a read-only file system" in err and "resumes" in err
    assert "run.lock" not in err and "this is a bug" not in err and "Traceback" not in err
    monkeypatch.undo()
    assert Workspace(root).lock().holder() is None
    assert [Workspace(root).stage_state(s) is not None for s in ("prepare", "train")] == [
        True,
        False,
    ]
