"""Results, Train, Export and Start as a new user meets them: what each number is compared
against, whose status a mark belongs to, a cancel that says so, readable passages, the
reranker's decision, and a run name that is already taken.

Engine data comes from the real engine on a tiny random BERT; the Train screen's live
states are driven through the real follow path with event files written by the engine's
own event classes and a handle whose process the test controls.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import copy_run
from test_app_flow import make_app, settle
from test_real_engine import tiny_run_config
from textual.widgets import DataTable, Input, RichLog, Static

from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.core.events import (
    JsonlEventLog,
    Message,
    Progress,
    RunFailed,
    RunFinished,
    StageFinished,
    StageSkipped,
    StageStarted,
    TrainLog,
)
from ragtune.engine.evaluate.results import read_results
from ragtune.engine.stages import STAGES
from ragtune.tui.engine_client import EngineClient
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.screens.start import SHORT
from ragtune.tui.widgets.plots import GroupedBars, LossPlot

WIDE = (120, 36)
NARROW = (80, 24)


def text_of(widget: Static) -> str:
    return str(widget.render())


def header_labels(table: DataTable) -> list[str]:
    return [" ".join(col.label.plain.split()) for col in table.columns.values()]


def row_cells(table: DataTable, i: int) -> list[str]:
    return [str(c) for c in table.get_row_at(i)]


def declined_reranker(cfg: RunConfig, dest: Path) -> Path:
    """A copy whose rerank stage, re-run by the engine, decides not to train a fresh head."""
    from ragtune.engine.api import run_pipeline

    root = copy_run(cfg, dest)
    replay = load_config(root / "config.toml")
    replay.reranker.min_queries_fresh_head = 100_000
    run_pipeline(replay, stages=["rerank"])
    return root


# -- Results: the change is training's own, against base + rotation ----------------------


async def test_heldout_table_compares_against_base_plus_rotation(tmp_path, tuned_run):
    root = copy_run(tuned_run, tmp_path / "ws")
    results = read_results(root / "metrics.json")
    held = results.suite("held-out")
    assert held is not None and held.base_rotated, "the engine measured base + rotation"
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("results")
        await settle(app)
        await pilot.pause(0.3)
        screen = app.screen
        table = screen.query_one("#emb-table", DataTable)
        assert header_labels(table) == [
            "dim",
            "metric",
            "base",
            "base + rotation",
            "fine-tuned",
            "vs base + rotation",
            "vs base",
        ]
        rows = held.rows()
        assert table.row_count == len(rows)
        for i, row in enumerate(rows):
            cells = row_cells(table, i)
            assert cells[3] == f"{row.base_rotated:.4f}" and cells[4] == f"{row.tuned:.4f}"
            vs_rot = (row.tuned - row.base_rotated) / row.base_rotated * 100
            vs_base = (row.tuned - row.base) / row.base * 100
            assert cells[5].split()[-1] == f"{vs_rot:+.1f}%", (cells, row)
            assert cells[6].split()[-1] == f"{vs_base:+.1f}%", (cells, row)
        caption = " ".join(text_of(screen.query_one("#heldout-title", Static)).split())
        assert "vs base + rotation is what training added" in caption
        # Per size, whether the held-out queries tell training's change from zero.
        assert held.gains, "the engine measured intervals"
        assert f"training vs base + rotation, nDCG@10 over {held.queries} queries" in caption
        for dim, gain in held.gains.items():
            assert f"{dim} {gain.mean:+.3f} {gain.verdict}" in caption
            assert gain.verdict in ("gain", "loss", "within noise")
        chart = screen.query_one(GroupedBars)
        lines = chart.build(chart.content_size.width).plain.splitlines()
        assert "░░ base" in lines[1] and "▒▒ base + rotation" in lines[1]
        assert "██ fine-tuned" in lines[1]
        bars = lines[2:]
        assert len(bars) == 3 * len(held.dims), "base, base + rotation, fine-tuned per dim"
        primary = results.primary_metric
        for j, dim in enumerate(held.dims):
            trio = bars[3 * j : 3 * j + 3]
            assert trio[0].split()[0] == str(dim)
            assert trio[1].endswith(f"{held.base_rotated[dim][primary]:.3f}")
            assert trio[2].endswith(f"{held.tuned[dim][primary]:.3f}")
        await pilot.resize_terminal(*NARROW)
        await pilot.pause(0.3)
        assert not chart.display, "at 80 columns the seven columns take the room"
        assert table.virtual_size.width <= table.size.width, "every column is on screen"


async def test_seven_columns_get_80_columns_from_the_first_paint(tmp_path, tuned_run):
    root = copy_run(tuned_run, tmp_path / "ws")
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=NARROW) as pilot:
        app.goto("results")
        await settle(app)
        await pilot.pause(0.3)
        table = app.screen.query_one("#emb-table", DataTable)
        assert len(table.columns) == 7
        assert not app.screen.query_one(GroupedBars).display, "no squeezed chart beside it"
        assert table.virtual_size.width <= table.size.width, "every column is on screen"


async def test_results_without_rotation_say_vs_base_and_fit_80_columns(tmp_path, finished_run):
    """metrics.json from a run with corpus_rotation off: no column for what was not measured."""
    metrics = json.loads((finished_run / "metrics.json").read_text())
    for key in ("base_rotated", "gains"):
        metrics["embedder"]["held-out"].pop(key, None)
    (finished_run / "metrics.json").write_text(json.dumps(metrics))
    app = make_app(tmp_path, EngineClient(), workspace=finished_run)
    async with app.run_test(size=NARROW) as pilot:
        app.goto("results")
        await settle(app)
        await pilot.pause(0.3)
        screen = app.screen
        table = screen.query_one("#emb-table", DataTable)
        assert header_labels(table) == ["dim", "metric", "base", "fine-tuned", "vs base"]
        assert row_cells(table, 0)[4] == "▲ +21.2%"  # 0.63 vs 0.52 in the fixture
        assert "vs base = fine-tuned against the untrained base model" in text_of(
            screen.query_one("#heldout-title", Static)
        )
        assert table.virtual_size.width <= table.size.width, "every column is on screen"
        chart = screen.query_one(GroupedBars)
        assert chart.display and chart.content_size.width >= 20, "room left for the chart"


async def test_a_damaged_metrics_json_is_named_with_the_fix(tmp_path, finished_run):
    """Cut off (a full disk, an editor): the step says which file and how to get it back,
    instead of "no evaluation yet" over a run that has one."""
    path = finished_run / "metrics.json"
    path.write_text(path.read_text()[:200])
    app = make_app(tmp_path, EngineClient(), workspace=finished_run)
    async with app.run_test(size=NARROW) as pilot:
        app.goto("results")
        await settle(app)
        await pilot.pause(0.3)
        status = " ".join(text_of(app.screen.query_one("#results-status", Static)).split())
        assert "metrics.json: cannot be read (JSONDecodeError" in status
        assert "fix: run `ragtune run` again" in status
        assert "no evaluation yet" not in status


# -- Try a query: readable passages, short sources, columns that exist -------------------


async def ask(app, pilot, question: str) -> None:
    screen = app.screen
    screen.query_one("TabbedContent").active = "ask-pane"
    screen.query_one("#ask-input", Input).value = question
    await pilot.press("f5")
    await settle(app)
    await pilot.pause(0.3)


async def test_try_a_query_shows_whole_passages_and_short_sources(tmp_path, tuned_run):
    root = copy_run(tuned_run, tmp_path / "ws")
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=NARROW) as pilot:
        app.goto("results")
        await settle(app)
        await ask(app, pilot, "When must supervisors confirm a forklift battery change?")
        screen = app.screen
        answer = screen.answer
        assert answer is not None and answer.reranked, "w=0.5 was set: search reranks"
        tuned = screen.query_one("#ask-tuned", DataTable)
        assert header_labels(tuned) == ["#", "fine-tuned: source", "cosine", "rerank", "fused"]
        docs = str(tuned_run.workspace_dir.parent / "docs")
        for i, hit in enumerate(answer.hits):
            cells = row_cells(tuned, i)
            name = Path(hit.source).name
            assert docs not in cells[1], "no absolute paths"
            assert cells[1] in (f"docs/{name}", name) or "…" in cells[1], cells[1]
            assert cells[3] == f"{hit.rerank_score:.2f}" and cells[4] == f"{hit.score:.3f}"
        passage = text_of(screen.query_one("#ask-passage", Static))
        first = answer.hits[0]
        assert passage.startswith(f"fine-tuned #1  docs/{Path(first.source).name}")
        assert docs not in passage
        assert " ".join(first.text.split()) in " ".join(passage.split()), "the whole passage"
        tuned.focus()
        await pilot.press("down")
        await pilot.pause()
        passage = text_of(screen.query_one("#ask-passage", Static))
        assert passage.startswith("fine-tuned #2")
        assert " ".join(answer.hits[1].text.split()) in " ".join(passage.split())
        await pilot.press("shift+tab")
        await pilot.pause()
        assert text_of(screen.query_one("#ask-passage", Static)).startswith("base #1")


async def test_try_a_query_without_a_reranker_has_no_rerank_column(tmp_path, tuned_run):
    root = declined_reranker(tuned_run, tmp_path / "ws")
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("results")
        await settle(app)
        await ask(app, pilot, "What does the pallet probe checks rule say?")
        screen = app.screen
        assert not screen.answer.reranked
        for side, label in (("base", "base"), ("tuned", "fine-tuned")):
            table = screen.query_one(f"#ask-{side}", DataTable)
            assert header_labels(table) == ["#", f"{label}: source", "cosine"]
            assert table.row_count > 0
        assert "retriever only" in text_of(screen.query_one("#results-status", Static))


# -- Export: the reranker decision and its reason -----------------------------------------


async def test_export_says_the_reranker_was_declined_and_why(tmp_path, tuned_run):
    root = declined_reranker(tuned_run, tmp_path / "ws")
    reason = read_results(root / "metrics.json").reranker.reason
    assert "no trained reranking head" in reason
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=NARROW) as pilot:
        app.goto("export")
        await settle(app)
        await pilot.pause(0.3)
        paths = " ".join(text_of(app.screen.query_one("#paths", Static)).split())
        assert "not trained yet" not in paths
        assert f"reranker not trained, by decision: {reason}" in paths
        assert "Search uses the retriever alone" in paths


async def test_export_shows_a_trained_reranker_and_what_search_does(tmp_path, tuned_run):
    root = copy_run(tuned_run, tmp_path / "ws")
    decision = read_results(root / "metrics.json").reranker.decision
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("export")
        await settle(app)
        await pilot.pause(0.3)
        paths = " ".join(text_of(app.screen.query_one("#paths", Static)).split())
        assert f"reranker {root / 'models' / 'reranker'} (saved)" in paths
        if decision:
            assert f"search: {' '.join(decision.split())}" in paths


# -- Start: a taken name is refused, never taken over ---------------------------------------


async def test_new_run_with_a_taken_name_offers_to_open_it(tmp_path, docs):
    runs = tmp_path / "runs"
    old = RunConfig()
    old.run.name = "handbook"
    old.run.workspace = "."
    old.sources.paths = [str(docs / "handbook")]
    old.embedder.epochs = 7
    (runs / "handbook").mkdir(parents=True)
    old.save(runs / "handbook" / "config.toml")
    before = (runs / "handbook" / "config.toml").read_text()
    app = make_app(tmp_path, EngineClient())
    async with app.run_test(size=NARROW) as pilot:
        state = app.state
        table = app.screen.query_one("#runs", DataTable)
        await pilot.pause()
        await settle(app)  # the run list is read in a worker
        await pilot.pause()
        # 80 columns: the three longest stage names are shortened so every column shows
        assert header_labels(table) == ["run", *(SHORT.get(s, s) for s in STAGES)]
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width
        app.screen.query_one("#run-name", Input).value = "handbook"
        await pilot.press("f5")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        question = text_of(dialog.query_one("#question", Static))
        assert "A run named 'handbook' already exists" in question
        await pilot.press("n")
        await pilot.pause()
        assert app.current_mode == "start"
        status = text_of(app.screen.query_one("#start-status", Static))
        assert "'handbook' already exists: F6 opens it, or type another name" in status
        assert (runs / "handbook" / "config.toml").read_text() == before, "nothing replaced"
        assert app.state is state, "the wizard did not switch to a fresh run of that name"
        await pilot.press("f5")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.3)
        assert app.cfg.embedder.epochs == 7 and app.cfg.sources.paths == old.sources.paths
        assert app.current_mode == "sources", "opened where that run continues"
        assert (runs / "handbook" / "config.toml").read_text() == before


async def test_new_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "runs" / "notes").mkdir(parents=True)
    (tmp_path / "runs" / "notes" / "todo.txt").write_text("keep me")
    app = make_app(tmp_path, EngineClient())
    async with app.run_test(size=NARROW) as pilot:
        app.screen.query_one("#run-name", Input).value = "notes"
        await pilot.press("f5")
        await pilot.pause()
        assert app.current_mode == "start"
        status = text_of(app.screen.query_one("#start-status", Static))
        assert "is not a ragtune run: pick another name" in status
        assert sorted(p.name for p in (tmp_path / "runs" / "notes").iterdir()) == ["todo.txt"]


# -- Train: the status of the run going now --------------------------------------------------


class Child:
    """A run handle whose process the test ends: cancel is only recorded, as a child that
    needs the rest of its training step before it stops."""

    def __init__(self, workspace: Path) -> None:
        self.pid = 4242
        self.workspace = workspace
        self.running = True
        self.cancelled = False

    def alive(self) -> bool:
        return self.running

    def cancel(self) -> None:
        self.cancelled = True


def write(path: Path, *events) -> None:
    log = JsonlEventLog(path)
    for ev in events:
        log(ev)
    log.close()


def earlier_run(t: float) -> list:
    """A whole earlier run, the way the pipeline logs it, ending at step 20/20."""
    out: list = [StageStarted(stage=s, time=t) for s in ("ingest",)]
    out += [StageFinished(stage="ingest", time=t + 1, seconds=1.0)]
    for i, stage in enumerate(("generate", "prepare", "train"), start=2):
        out.append(StageStarted(stage=stage, time=t + i))
        if stage == "train":
            out += [
                TrainLog(
                    stage="train",
                    step=s,
                    max_steps=20,
                    epoch=s / 20,
                    loss=5.0 - s / 10,
                    learning_rate=2e-5,
                    time=t + i + s / 10,
                )
                for s in (1, 10, 20)
            ]
        out.append(StageFinished(stage=stage, time=t + i + 3, seconds=3.0))
    for stage in ("evaluate", "rerank", "export"):
        out += [StageStarted(stage=stage, time=t + 9), StageFinished(stage=stage, time=t + 9)]
    out.append(RunFinished(time=t + 10, seconds=10.0))
    return out


async def redraw(screen, pilot) -> None:
    await pilot.pause(0.4)
    screen._dirty = True
    screen.redraw()
    await pilot.pause()


async def wait_for(pilot, check, what: str) -> None:
    for _ in range(60):
        if check():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stage_lines(screen) -> dict[str, str]:
    out = {}
    for line in text_of(screen.query_one("#stages", Static)).splitlines():
        mark, stage, *rest = line.split()
        out[stage] = " ".join([mark, *rest])
    return out


async def test_chunk_preview_run_is_not_shown_as_a_finished_run(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert, reranker=False)
    client = EngineClient()
    ws = cfg.workspace_dir
    from ragtune.engine.core.workspace import Workspace

    client.ingest(cfg, Workspace.create(ws))
    client.ingest(cfg, Workspace.create(ws))  # the preview again: ingest up to date
    app = make_app(tmp_path, client)
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        app.goto("training")
        await settle(app)
        screen = app.screen
        # the stage status is read in a worker that a loaded machine may start late
        await wait_for(pilot, lambda: "rerank" in screen.plan, "the stage status")
        await redraw(screen, pilot)
        status = text_of(screen.query_one("#train-status", Static))
        assert status == "no run yet: F5 runs every stage (the chunks are ready)"
        marks = stage_lines(screen)
        assert marks["ingest"] == "✔" and marks["rerank"] == "– off"
        assert all(marks[s] == "· to do" for s in STAGES[1:] if s != "rerank"), marks
        log = "\n".join(line.text for line in screen.query_one(RichLog).lines)
        assert "run finished" not in log and "✔ chunks rebuilt" in log


async def test_rerun_marks_and_header_belong_to_the_run_going_now(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    events = ws / "events.jsonl"
    t = 1_800_000_000.0
    write(events, *earlier_run(t))
    child = Child(ws)
    app = make_app(tmp_path, fake_engine)
    app.state.run_handle = child
    async with app.run_test(size=WIDE) as pilot:
        app.goto("training")
        screen = app.screen
        t2 = t + 100
        write(
            events,
            *[StageSkipped(stage=s, reason="up to date", time=t2) for s in STAGES[:3]],
            StageStarted(stage="train", time=t2 + 1),
        )
        await wait_for(
            pilot,
            lambda: screen.view.run is not None and screen.view.run.current_stage == "train",
            "train",
        )
        await redraw(screen, pilot)
        status = text_of(screen.query_one("#train-status", Static))
        assert status == "running train", "no step from the old run before this one logs"
        marks = stage_lines(screen)
        assert marks["ingest"] == "↷ up to date" and marks["train"] == "▶"
        assert [marks[s] for s in ("evaluate", "rerank", "export")] == ["·", "·", "·"]
        write(
            events,
            Progress(
                stage="train",
                done=2,
                total=40,
                unit="steps",
                extra={"model": "embedder"},
                time=t2 + 2,
            ),
            TrainLog(
                stage="train",
                step=2,
                max_steps=40,
                epoch=0.05,
                loss=6.0,
                learning_rate=1e-5,
                time=t2 + 2,
            ),
            Progress(
                stage="train",
                done=4,
                total=40,
                unit="steps",
                extra={"model": "embedder"},
                time=t2 + 4,
            ),
        )
        await wait_for(
            pilot,
            lambda: screen.view.run is not None and screen.view.run.training.step == 4,
            "step 4",
        )
        await redraw(screen, pilot)
        status = text_of(screen.query_one("#train-status", Static))
        assert status.startswith("running train · embedder step 4/40 · epoch 0.10 · ETA 0:36")
        assert "lr 1.00e-05" in status
        assert stage_lines(screen)["train"] == "▶ 4/40 steps"
        write(
            events,
            StageFinished(stage="train", time=t2 + 50, seconds=49.0),
            StageStarted(stage="evaluate", time=t2 + 51),
            Progress(stage="evaluate", done=30, total=339, unit="texts", time=t2 + 52),
        )
        await wait_for(
            pilot,
            lambda: screen.view.run is not None and screen.view.run.current_stage == "evaluate",
            "evaluate",
        )
        await redraw(screen, pilot)
        status = text_of(screen.query_one("#train-status", Static))
        assert status == "running evaluate · 30/339 texts", "no training step during evaluate"
        marks = stage_lines(screen)
        assert marks["train"] == "✔" and marks["evaluate"] == "▶ 30/339 texts"
        assert marks["rerank"] == "·"
        write(
            events,
            *[
                StageSkipped(stage=s, reason="switched off in the config", time=t2 + 60)
                for s in ("rerank", "export")
            ],
            RunFinished(time=t2 + 61, seconds=61.0),
        )
        child.running = False
        await wait_for(pilot, lambda: screen.view.run.finished, "the end")
        await redraw(screen, pilot)
        assert text_of(screen.query_one("#train-status", Static)) == (
            "finished in 1:01 · F3 shows the results"
        )
        assert stage_lines(screen)["rerank"] == "↷ off"


async def test_cancel_says_stopping_at_once_then_cancelled_not_failed(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    events = ws / "events.jsonl"
    t = 1_800_000_000.0
    write(events, *earlier_run(t))
    child = Child(ws)
    app = make_app(tmp_path, fake_engine)
    app.state.run_handle = child
    async with app.run_test(size=NARROW) as pilot:
        app.goto("training")
        screen = app.screen
        write(
            events,
            *[StageSkipped(stage=s, reason="up to date", time=t + 100) for s in STAGES[:3]],
            StageStarted(stage="train", time=t + 101),
            Progress(
                stage="train",
                done=3,
                total=20,
                unit="steps",
                extra={"model": "embedder"},
                time=t + 102,
            ),
        )
        await wait_for(
            pilot,
            lambda: screen.view.run is not None and screen.view.run.training.step == 3,
            "step 3",
        )
        await pilot.press("f8")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await pilot.pause()
        assert child.cancelled
        status = text_of(screen.query_one("#train-status", Static))
        assert status.startswith("stopping… train"), "said at once, before the child stops"
        assert stage_lines(screen)["train"] == "■ stopping…"
        write(
            events,
            Message(stage="train", level="info", text="saving checkpoint-3", time=t + 120),
            RunFailed(
                stage="train",
                error="training stopped; the last checkpoint is kept and `ragtune run` resumes it",
                error_type="Cancelled",
                time=t + 125,
            ),
        )
        child.running = False
        await wait_for(pilot, lambda: screen.view.run.ended and not screen.alive, "the stop")
        await redraw(screen, pilot)
        status = " ".join(text_of(screen.query_one("#train-status", Static)).split())
        assert status == (
            "cancelled in train at embedder step 3/20 · F5 resumes from the last checkpoint"
        )
        assert "fail" not in status
        assert stage_lines(screen)["train"] == "■"
        notes = [n.message for n in app._notifications]
        assert "run cancelled: F5 resumes from the last checkpoint" in notes
        assert not any(n.severity == "error" for n in app._notifications)
        log = "\n".join(line.text for line in screen.query_one(RichLog).lines)
        assert "failed" not in log and "■ cancelled in stage train: training stopped" in log


async def test_a_failure_still_reads_failed(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    write(
        ws / "events.jsonl",
        StageStarted(stage="ingest", time=1.0),
        StageFinished(stage="ingest", time=2.0),
        StageStarted(stage="generate", time=3.0),
        RunFailed(stage="generate", error="22 chunks failed", error_type="RagtuneError", time=4),
    )
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("training")
        await settle(app)
        screen = app.screen
        await redraw(screen, pilot)
        assert text_of(screen.query_one("#train-status", Static)) == (
            "failed in generate: 22 chunks failed"
        )
        assert stage_lines(screen)["generate"] == "✘"


async def test_log_lines_wrap_to_the_log_width(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    long = (
        "reranker not trained: sentence-transformers/all-MiniLM-L6-v2 has no trained reranking "
        "head, and 501 training queries are far too few to learn one"
    )
    write(
        ws / "events.jsonl",
        StageStarted(stage="rerank", time=1.0),
        Message(stage="rerank", level="warning", text=long, time=2.0),
        StageFinished(stage="rerank", time=3.0),
        RunFinished(time=4.0, seconds=3.0),
    )
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=NARROW) as pilot:
        app.goto("training")
        await settle(app)
        screen = app.screen
        await redraw(screen, pilot)
        log = screen.query_one(RichLog)
        lines = [line.text.rstrip() for line in log.lines]
        width = log.scrollable_content_region.width
        assert all(len(line) <= width for line in lines), (width, lines)
        joined = " ".join(" ".join(lines).split())
        assert long in joined, "the whole message, wrapped"


async def test_loss_plot_shows_one_model_and_says_what_its_loss_is(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    write(
        ws / "events.jsonl",
        StageStarted(stage="train", time=1.0),
        *[
            TrainLog(stage="train", model="embedder", step=s, max_steps=20, loss=v, time=1 + s)
            for s, v in ((1, 1.63), (5, 3.1), (10, 3.89))
        ],
        StageFinished(stage="train", time=20.0),
    )
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("training")
        await settle(app)
        screen = app.screen
        await redraw(screen, pilot)
        plot = screen.query_one(LossPlot)
        assert plot.shown == ("embedder training loss (distill) by step", [1, 5, 10])
        note = " ".join(text_of(screen.query_one("#loss-note", Static)).split())
        assert note.startswith(
            "distill = contrastive cross-entropy + KL to the frozen base model, summed over "
            "every Matryoshka size."
        )
        assert "the KL part grows as the model leaves the base" in note
        assert "(step 1: a single batch)" in note
        write(
            ws / "events.jsonl",
            StageStarted(stage="rerank", time=30.0),
            *[
                TrainLog(
                    stage="rerank", model="reranker", step=s, max_steps=9, loss=0.7, time=30 + s
                )
                for s in (1, 5)
            ],
        )
        screen.follow(ws / "events.jsonl")
        await settle(app)
        await redraw(screen, pilot)
        assert plot.shown == ("reranker training loss (bce) by step", [1, 5])
        note = " ".join(text_of(screen.query_one("#loss-note", Static)).split())
        assert note.startswith("bce = binary cross-entropy on (query, passage) pairs")


def test_replayed_cancel_is_the_engines_cancelled_event(tmp_path):
    from conftest import RUN_EVENTS

    from ragtune.engine.core.events import read_events
    from ragtune.tui.replay import ReplayRun

    run = ReplayRun(RUN_EVENTS, tmp_path, rate=200)
    run.cancel()
    run.wait(5)
    last = list(read_events(tmp_path / "events.jsonl"))[-1]
    assert isinstance(last, RunFailed) and last.cancelled
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["time"] > 1_750_000_100, "replayed events carry today's time"
