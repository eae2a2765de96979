"""What the wizard says is true when it says it (issue 18's major items), on the real engine.

Try a query never shows the base model as the fine-tuned one; Train says "finished, F3
shows the results" only when a run trained; presets do not depend on their order; the
engine's checks before training show on the field; a changed setting shows as stale on
Train and Start, as ``ragtune status`` says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import copy_run
from test_app_flow import make_app, settle
from test_real_engine import tiny_run_config
from textual.widgets import DataTable, Input, Select, Static

from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.stages import STAGES, status_text
from ragtune.tui.engine_client import EngineClient
from ragtune.tui.screens.training_settings import PRESETS, governed, preset_values

WIDE = (120, 36)
NARROW = (80, 24)
REPO = Path(__file__).resolve().parents[2]
QUESTION = "When must supervisors confirm a forklift battery change?"


def text_of(widget: Static) -> str:
    return " ".join(str(widget.render()).split())


def header_labels(table: DataTable) -> list[str]:
    return [" ".join(col.label.plain.split()) for col in table.columns.values()]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ragtune.engine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


async def goto(app, pilot, step: str) -> None:
    """A step change, with the new screen composed and its first workers done."""
    app.goto(step)
    await pilot.pause(0.2)
    await settle(app)
    await pilot.pause(0.1)


async def ask(app, pilot, question: str) -> None:
    screen = app.screen
    screen.query_one("TabbedContent").active = "ask-pane"
    screen.query_one("#ask-input", Input).value = question
    await pilot.press("f5")
    await settle(app)
    await pilot.pause(0.3)


# -- 1. Try a query: the fine-tuned model's own hits, or a plain "none yet" ----------------


async def test_try_a_query_before_and_after_training_in_one_session(tmp_path, tuned_run):
    root = copy_run(tuned_run, tmp_path / "ws")
    saved = {d: tmp_path / f"held-{d.name}" for d in (root / "models").iterdir()}
    saved[root / "metrics.json"] = tmp_path / "held-metrics.json"
    for model, aside in saved.items():
        # as during the first training: no model saved, no evaluation, no recommendation
        model.rename(aside)
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "results")
        await ask(app, pilot, QUESTION)
        screen = app.screen
        answer = screen.answer
        assert answer is not None and not answer.fine_tuned
        assert answer.base_hits, "the base model's own ranking is shown"
        tuned = screen.query_one("#ask-tuned", DataTable)
        base = screen.query_one("#ask-base", DataTable)
        assert tuned.row_count == 0, "the base model's hits are not shown as fine-tuned"
        assert header_labels(tuned)[1] == "fine-tuned: none yet: source"
        assert base.row_count == len(answer.base_hits)
        status = text_of(screen.query_one("#results-status", Static))
        assert status.startswith("no fine-tuned model yet"), status

        # Training ends and saves its models while the wizard is on another step.
        await goto(app, pilot, "training")
        for model, aside in saved.items():
            aside.rename(model)
        app.goto("results")
        await pilot.pause(0.2)
        await settle(app)
        await pilot.pause(0.3)
        screen = app.screen
        answer = screen.answer
        assert answer is not None and answer.question == QUESTION, "asked again on return"
        assert answer.fine_tuned

        done = cli("ask", str(root), QUESTION, "--compare", "--json")
        assert done.returncode == 0, done.stderr
        expected = json.loads(done.stdout)
        assert expected["fine_tuned"] is True
        assert [h.chunk_id for h in answer.hits] == [h["chunk_id"] for h in expected["hits"]]
        tuned = screen.query_one("#ask-tuned", DataTable)
        assert tuned.row_count == len(expected["hits"])
        for i, hit in enumerate(expected["hits"]):
            cells = [str(c) for c in tuned.get_row_at(i)]
            assert cells[2] == f"{hit['retriever_score']:.3f}", (i, cells, hit)
        assert [h.chunk_id for h in answer.base_hits] == [
            h["chunk_id"] for h in expected["base_hits"]
        ]
        tuned_scores = [round(h.retriever_score, 3) for h in answer.hits]
        base_scores = [round(h.retriever_score, 3) for h in answer.base_hits]
        assert tuned_scores != base_scores, "not the base model compared with itself"

        # F5 and F6 use the same, current models.
        await pilot.press("f6")
        await settle(app)
        await pilot.pause(0.3)
        assert [h.chunk_id for h in screen.answer.hits] == [h.chunk_id for h in answer.hits]
        status = text_of(screen.query_one("#results-status", Static))
        assert status.startswith("top 5 chunks per model"), status


# -- 2. Train: "finished" says what ran ----------------------------------------------------


async def test_generation_alone_is_not_a_finished_training(tmp_path, tiny_bert):
    from ragtune.engine.api import run_pipeline

    cfg = tiny_run_config(tmp_path, tiny_bert, reranker=False)
    run_pipeline(cfg, stages=["ingest", "generate"])
    app = make_app(tmp_path, EngineClient(), workspace=cfg.workspace_dir)
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "training")
        await pilot.pause(0.6)
        screen = app.screen
        status = text_of(screen.query_one("#train-status", Static))
        assert "F3 shows the results" not in status, status
        assert "(ingest, generate only): training has not run yet" in status, status
        stages = str(screen.query_one("#stages", Static).render()).splitlines()
        assert "· train  to do" in stages and "· evaluate  to do" in stages, stages
        assert "✔ generate" in stages, stages


# -- 3. Presets: complete statements, order-free; warnings follow the value ------------------


def test_every_preset_states_every_governed_setting() -> None:
    for name in PRESETS:
        values = preset_values(name)
        for part in ("embedder", "reranker"):
            assert set(governed(part)) <= set(values[part]), (name, part)


async def apply(app, pilot, name: str) -> None:
    app.screen.query_one("#preset", Select).value = name
    await pilot.pause()
    await settle(app)
    await pilot.pause(0.2)


async def test_presets_do_not_depend_on_their_order(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert)
    alone: dict[str, RunConfig] = {}
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "settings")
        for name in PRESETS:
            app.state.cfg.embedder = type(cfg.embedder)()
            app.state.cfg.embedder.base_model = str(tiny_bert)
            await apply(app, pilot, name)
            alone[name] = RunConfig.from_dict(app.cfg.to_dict())
        for first in PRESETS:
            for second in PRESETS:
                if first == second:
                    continue
                await apply(app, pilot, first)
                await apply(app, pilot, second)
                for part in ("embedder", "reranker"):
                    got = getattr(app.cfg, part).to_dict()
                    want = getattr(alone[second], part).to_dict()
                    for key in governed(part):
                        assert got[key] == want[key], (first, second, part, key)
        # the case a user hit: quick CPU check after GPL keeps neither gpl nor 4 negatives
        await apply(app, pilot, "GPL pseudo-labels")
        await apply(app, pilot, "quick CPU check")
        assert app.cfg.embedder.loss == type(cfg.embedder)().loss != "gpl"
        assert app.cfg.embedder.hard_negatives == type(cfg.embedder)().hard_negatives


async def test_gpl_warning_follows_the_loss_also_after_leaving_the_step(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert)
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "settings")
        screen = app.screen
        teacher_error = "#err-emb-form-pseudo_label_model"
        await apply(app, pilot, "GPL pseudo-labels")
        assert app.cfg.embedder.loss == "gpl"
        assert "is not on this machine" in text_of(screen.query_one(teacher_error, Static))
        screen.query_one("#emb-form-loss", Select).value = "distill"
        await pilot.pause()
        await settle(app)
        await pilot.pause(0.2)
        assert app.cfg.embedder.loss == "distill"
        assert text_of(screen.query_one(teacher_error, Static)) == ""
        assert "⚠" not in text_of(screen.query_one("#preset-note", Static))
        await goto(app, pilot, "chunking")
        await goto(app, pilot, "settings")
        await pilot.pause(0.2)
        assert text_of(app.screen.query_one(teacher_error, Static)) == ""


# -- 4. The engine's checks before training, on the field ------------------------------------


async def set_field(app, pilot, control_id: str, value: str) -> None:
    app.screen.query_one(control_id, Input).value = value
    await pilot.pause()
    await settle(app)
    await pilot.pause(0.2)


async def test_matryoshka_sizes_are_checked_against_the_model(tmp_path, tiny_bert):
    from ragtune.engine.core.models import load_embedder
    from ragtune.engine.embedder.train import embedding_dim

    full = embedding_dim(load_embedder(str(tiny_bert), device="cpu"))
    cfg = tiny_run_config(tmp_path, tiny_bert)
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "settings")
        screen = app.screen
        dims_error = "#err-emb-form-matryoshka_dims"
        await set_field(app, pilot, "#emb-form-matryoshka_dims", f"{full * 2}, 32")
        error = text_of(screen.query_one(dims_error, Static))
        assert f"sizes no larger than the model's {full}" in error, error
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings", "the run would fail at its start: not yet"
        # a size the best-model metric names but the sizes no longer hold
        await set_field(app, pilot, "#emb-form-matryoshka_dims", f"{full}, 16")
        assert text_of(screen.query_one(dims_error, Static)) == ""
        note = text_of(screen.query_one("#emb-note", Static))
        assert "embedder.metric_for_best_model" in note and "eval_dim_32" in note, note
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings"
        await set_field(app, pilot, "#emb-form-matryoshka_dims", f"{full}, 32")
        assert text_of(screen.query_one("#emb-note", Static)) == ""
        placeholder = screen.query_one("#emb-form-matryoshka_dims", Input).placeholder
        assert f"from the model's {full}" in placeholder
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "training"


# -- 5. A changed setting is stale on Train and Start, as `ragtune status` says --------------


async def test_changed_setting_shows_stale_on_train_and_start(tmp_path, tuned_run):
    root = copy_run(tuned_run, tmp_path / "runs" / "tuned")
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "training")
        await pilot.pause(0.6)
        screen = app.screen
        status = text_of(screen.query_one("#train-status", Static))
        assert "F3 shows the results" in status and "stale" not in status, status
        await goto(app, pilot, "settings")
        epochs = app.cfg.embedder.epochs
        await set_field(app, pilot, "#emb-form-epochs", str(epochs + 1))
        await pilot.press("f3")
        await settle(app)
        await pilot.pause(0.6)
        assert app.current_mode == "training"
        screen = app.screen
        cli_status = cli("status", str(root))
        assert "train     stale (embedder.epochs)" in cli_status.stdout, cli_status.stdout
        stages = str(screen.query_one("#stages", Static).render()).splitlines()
        train = stages.index("↻ train  stale")
        assert stages[train + 1].strip() == "embedder.epochs", stages
        status = text_of(screen.query_one("#train-status", Static))
        assert "changed since: embedder.epochs" in status, status
        assert "F3 shows the last results" in status, status
        await goto(app, pilot, "start")
        await pilot.pause(0.2)
        await settle(app)  # the run list is read in a worker
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        row = [str(c) for c in table.get_row(str(root))]
        marks = dict(zip(["run", *STAGES], row, strict=True))
        assert marks["train"] == "↻" and marks["ingest"] == "✔", marks
        legend = text_of(app.screen.query_one("#runs-legend", Static))
        assert "↻ stale" in legend
        assert load_config(root / "config.toml").embedder.epochs == epochs + 1
        assert status_text(Workspace(root))["train"] == "stale (embedder.epochs)"
