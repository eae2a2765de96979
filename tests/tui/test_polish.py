"""Issue 18's minor items, each as a new user meets it: help on focus, a CPU run's numbers,
the LLM estimate's time and the confirm that repeats it, generation progress by reason,
focus where typing goes, keys that say why they do nothing, detail panes, the reranker's
decision before the run, and the Train screen's plot and log.

The engine is the real one on tiny models; event files are written with the engine's own
event classes and followed through the real follow path.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_run
from rich.console import Console
from test_app_flow import make_app, settle
from test_real_engine import tiny_run_config
from textual.widgets import DataTable, Input, RichLog, Select, Static, TabbedContent

from ragtune.engine.core.events import (
    JsonlEventLog,
    Progress,
    RunFinished,
    StageFinished,
    StageStarted,
    TrainLog,
)
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.llm_cost import CostEstimate
from ragtune.tui.engine_client import EngineClient
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.screens.help import HelpScreen
from ragtune.tui.screens.llm import duration
from ragtune.tui.widgets.plots import LossPlot, step_ticks
from ragtune.tui.widgets.step_bar import STEPS, StepBar

WIDE = (120, 40)
NARROW = (80, 24)


def text_of(widget: Static) -> str:
    return " ".join(str(widget.render()).split())


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def goto(app, pilot, step: str, *, wait: bool = True) -> None:
    """``wait``: for the step's workers too (not while one follows a live run: it lasts)."""
    app.goto(step)
    await pilot.pause(0.2)
    if wait:
        await settle(app)
    await pilot.pause(0.1)


def write(path: Path, *events) -> None:
    log = JsonlEventLog(path)
    for ev in events:
        log(ev)
    log.close()


class Child:
    """A run handle for a real process the test starts and ends."""

    def __init__(self, workspace: Path, proc: subprocess.Popen | None = None) -> None:
        self.proc = proc
        self.pid = proc.pid if proc is not None else 0
        self.workspace = workspace
        self.running = True

    def alive(self) -> bool:
        return self.running and (self.proc is None or self.proc.poll() is None)

    def cancel(self) -> None:
        self.running = False


async def wait_for(pilot, check, what: str, tries: int = 80) -> None:
    for _ in range(tries):
        if check():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- 6. help shows for the focused field, from the keyboard --------------------------------


async def test_focused_field_shows_its_help(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert)
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "settings")
        screen = app.screen
        help_line = screen.query_one("#help-emb-form-max_seq_length", Static)
        assert not help_line.display
        screen.query_one("#emb-form-max_seq_length", Input).focus()
        await pilot.pause()
        assert help_line.display and "0 = the model's limit" in text_of(help_line)
        screen.query_one("#emb-form-matryoshka_dims", Input).focus()
        await pilot.pause()
        assert not help_line.display, "only the focused field's help"
        assert screen.query_one("#help-emb-form-matryoshka_dims", Static).display
        await goto(app, pilot, "chunking")
        app.screen.query_one("#chunk-form-tokenizer", Input).focus()
        await pilot.pause()
        tokenizer = app.screen.query_one("#help-chunk-form-tokenizer", Static)
        assert tokenizer.display and "empty = the embedder's base model" in text_of(tokenizer)


# -- 7. a CPU run shows CPU, memory, samples/s and ETA -------------------------------------


async def test_cpu_run_shows_cpu_memory_and_rate(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    events = ws / "events.jsonl"
    busy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nblock = b'x' * (200 * 2**20)\nt = time.time()\n"
            "while time.time() - t < 120: pass",
        ]
    )
    try:
        child = Child(ws, busy)
        app = make_app(tmp_path, fake_engine)
        app.state.run_handle = child
        now = time.time()
        write(
            events,
            StageStarted(stage="train", time=now - 10),
            *[
                Progress(
                    stage="train",
                    done=step,
                    total=100,
                    unit="steps",
                    extra={"model": "embedder"},
                    time=now - 10 + step,
                )
                for step in (1, 5, 9)
            ],
        )
        async with app.run_test(size=WIDE) as pilot:
            await goto(app, pilot, "training", wait=False)
            screen = app.screen
            panel = screen.query_one("#gpu-none", Static)
            await wait_for(pilot, lambda: "memory" in text_of(panel), "a process sample")
            await pilot.pause(0.6)
            shown = text_of(panel)
            assert "no GPU: a CPU run" in shown and "CPU " in shown, shown
            assert "memory " in shown, shown
            rss_gb = float(shown.split("memory ")[1].split(" GB")[0])
            assert rss_gb >= 0.19, "the child's 200 MB block is counted"
            batch = app.cfg.embedder.batch_size
            assert f"{1.0 * batch:.1f} samples/s (1.00 steps/s × batch {batch})" in shown, shown
            assert "ETA 1:31" in shown, shown
    finally:
        busy.kill()
        busy.wait()


# -- 8. the estimate gives a time; the confirm before a paid run repeats it ----------------


def test_time_estimate_from_limits_and_a_timed_call() -> None:
    from ragtune.engine.config import LlmConfig

    est = CostEstimate(600, 300_000, 60_000, 1.2, "litellm price map")
    llm = LlmConfig(model="openai/x", concurrency=4, requests_per_minute=60)
    assert duration(est, llm, None) == "at least 10:00 (the rate limits); F5 Test times a call"
    timed = duration(est, llm, 2.0)
    assert timed.startswith("at least 10:00: 600 calls x 2.0s (the test call) / 4 at once")
    assert "held back by the rate limits" in timed
    fast = duration(est, LlmConfig(model="openai/x", concurrency=4), 2.0)
    assert fast.startswith("at least 5:00") and "rate limits" not in fast
    assert duration(est, LlmConfig(model="openai/x"), None).startswith("unknown until F5 Test")


async def test_confirm_before_a_paid_run_repeats_calls_tokens_price(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert)
    cfg.generation.generator = "litellm"
    cfg.generation.llm.model = "openai/gpt-4o-mini"
    cfg.generation.llm.requests_per_minute = 60
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "llm")
        await pilot.press("f6")
        await settle(app)
        await pilot.pause(0.3)
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#llm-cost", Static).content)
        cost = " ".join(console.export_text().split())
        est, time_text, _ = app.state.estimate
        assert f"time {time_text}".split(";")[0] in cost, cost
        await goto(app, pilot, "training")
        await pilot.press("f5")
        await pilot.pause(0.3)
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        question = text_of(dialog.query_one("#question", Static))
        assert f"{est.calls:,} calls" in question and f"~{est.input_tokens:,} input" in question
        assert "time at least" in question, question
        await pilot.press("n")


async def test_llm_free_test_says_there_is_nothing_to_test(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert)
    cfg.generation.generator = "llm-free"
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "llm")
        await pilot.press("f5")
        await pilot.pause()
        shown = text_of(app.screen.query_one("#llm-result", Static))
        assert shown.startswith("Nothing to test: generator llm-free is chosen"), shown
        assert "set a model first" not in shown
        # auto with no model means LLM-free too
        app.screen.query_one("#gen-form-generator", Select).value = "auto"
        await pilot.pause()
        await pilot.press("f5")
        await pilot.pause()
        shown = text_of(app.screen.query_one("#llm-result", Static))
        assert shown.startswith("Nothing to test: no LLM model is set, so generator auto"), shown


# -- 10. generation progress: retries by reason, a quiet wait, a done mark -----------------


async def test_generation_progress_names_retries_and_ends_with_done(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    events = ws / "events.jsonl"
    child = Child(ws)
    app = make_app(tmp_path, fake_engine)
    app.state.run_handle = child
    now = time.time()
    extra = {
        "rows": 398,
        "rows_per_s": 3.1,
        "calls": 420,
        "input_tokens": 98_000,
        "output_tokens": 61_000,
        "failures": {},
        "retries": {"rate_limited": 3, "timeout": 1},
        "cost_usd": 0.05,
    }
    write(
        events,
        StageStarted(stage="generate", time=now - 40),
        Progress(stage="generate", done=199, total=212, unit="chunks", extra=extra, time=now - 30),
    )
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "samples", wait=False)
        screen = app.screen
        screen.start_follow()
        line = screen.query_one("#gen-progress", Static)
        await wait_for(pilot, lambda: "199/212" in text_of(line), "progress")
        await pilot.pause(1.2)
        shown = text_of(line)
        assert "199/212 chunks · 398 rows written" in shown, shown
        assert "retries: rate limit (429) 3, timeout 1" in shown, shown
        assert "nothing finished for 3" in shown, "a 30 s quiet wait says so"
        write(events, StageFinished(stage="generate", time=time.time(), seconds=40.0))
        child.running = False
        await wait_for(pilot, lambda: "generation done" in text_of(line), "done")
        shown = text_of(line)
        assert shown.startswith("✔ generation done"), shown
        assert "rows written are not all used: the quality gate and your review" in shown


# -- 11, 12, 17: where typing goes, and keys that do nothing say why ------------------------


async def test_typing_goes_to_the_field_that_invites_it(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        name = app.screen.query_one("#run-name", Input)
        assert app.focused is name and name.value == ""
        await pilot.press(*"handbook")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.current_mode == "sources"
        tree = app.screen.query_one("#tree")
        assert app.focused is tree, "arrows move the tree at once"
        await pilot.press(*"/tmp/abc")
        await pilot.pause()
        path = app.screen.query_one("#path-input", Input)
        assert path.value == "/tmp/abc" and app.focused is path, "typed text is a path"
        await pilot.press("f2")
        await pilot.pause(0.3)
        assert app.current_mode == "start"
        name = app.screen.query_one("#run-name", Input)
        assert app.focused is name and name.value == ""
        await pilot.press(*"handbook")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ConfirmDialog), "a taken name: the dialog, not a toast"
        await pilot.press("n")
        await pilot.pause()
        assert app.focused is app.screen.query_one("#run-name", Input), "for another name"
        app.screen.query_one("#run-name", Input).value = "handbook"
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ConfirmDialog), "the same the second time"


async def test_ctrl_s_and_f2_on_start_say_why_and_create_nothing(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.press("f2")
        await pilot.pause()
        said = notes(app)
        assert any(n.startswith("no run yet, so nothing to save") for n in said), said
        assert any(n.startswith("this is the first step") for n in said), said
        assert not (tmp_path / "runs").exists() and not (tmp_path / "ws").exists()


async def test_f3_on_export_says_it_is_the_last_step(tmp_path, fake_engine, finished_run):
    app = make_app(tmp_path, fake_engine, workspace=finished_run)
    async with app.run_test(size=NARROW) as pilot:
        await goto(app, pilot, "export")
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "export"
        assert any(n.startswith("this is the last step") for n in notes(app))


async def test_help_says_how_it_closes_and_the_step_bar_keeps_numbers(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause()
        bar = str(app.screen.query_one(StepBar).render())
        assert len(bar) <= NARROW[0] - 2, bar
        for i, (_, label) in enumerate(STEPS, 1):
            assert f"{i}{label}" in bar, bar
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "F1, q or escape closes this help" in text_of(app.screen.query_one(Static))
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


# -- 13. Results tabs have a key ------------------------------------------------------------


async def test_f7_moves_through_the_results_tabs(tmp_path, fake_engine, finished_run):
    app = make_app(tmp_path, fake_engine, workspace=finished_run)
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "results")
        tabs = app.screen.query_one(TabbedContent)
        seen = [tabs.active]
        for _ in range(6):
            await pilot.press("f7")
            await pilot.pause()
            seen.append(tabs.active)
        assert seen == [
            "emb-pane",
            "bench-pane",
            "ret-pane",
            "rr-pane",
            "deploy-pane",
            "ask-pane",
            "emb-pane",
        ]
        await pilot.press("f7", "f7", "f7", "f7", "f7")
        await pilot.pause()
        assert app.focused is app.screen.query_one("#ask-input", Input)


# -- 14. a chunk and a sample row, whole ----------------------------------------------------


async def test_detail_panes_show_a_whole_chunk_and_a_whole_row(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert, reranker=False)
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "chunking")
        await pilot.press("f5")
        await settle(app)
        await pilot.pause(0.3)
        screen = app.screen
        chunks = screen.preview.chunks
        detail = text_of(screen.query_one("#chunk-detail", Static))
        assert detail.startswith(chunks[0].source)
        assert " ".join(chunks[0].text.split()) in detail, "the whole chunk"
        table = screen.query_one("#chunk-samples", DataTable)
        table.focus()
        await pilot.press("down")
        await pilot.pause()
        detail = text_of(screen.query_one("#chunk-detail", Static))
        assert " ".join(chunks[1].text.split()) in detail
        await goto(app, pilot, "llm")
        await goto(app, pilot, "samples")
        await pilot.press("f5")
        await settle(app)
        await pilot.pause(0.3)
        screen = app.screen
        entry = screen.entries[0]
        detail = text_of(screen.query_one("#sample-detail", Static))
        assert f"question: {' '.join(entry.row.question.split())}" in detail, detail
        passage = " ".join((entry.row.positive or entry.row.context).split())
        assert passage in detail


# -- 15. the reranker's skip is said on the settings step ----------------------------------


async def test_settings_say_the_reranker_will_not_be_trained(tmp_path, tiny_bert):
    cfg = tiny_run_config(tmp_path, tiny_bert)
    cfg.reranker.min_queries_fresh_head = 20_000
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "settings")
        note = text_of(app.screen.query_one("#rr-note", Static))
        assert "it will not be trained unless the run makes 20000 or more" in note, note
        assert "no trained reranking head" in note
        app.screen.query_one("#rr-form-enabled").value = False
        await pilot.pause()
        await settle(app)
        await pilot.pause(0.2)
        assert text_of(app.screen.query_one("#rr-note", Static)) == ""


async def test_settings_count_the_prepared_queries_for_the_reranker(tmp_path, tuned_run):
    root = copy_run(tuned_run, tmp_path / "ws")
    pairs = Workspace(root).stage_summary("prepare")["train_pairs"]
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause(0.3)  # Start opens the workspace again from its config.toml
        app.cfg.reranker.min_queries_fresh_head = pairs + 1
        await goto(app, pilot, "settings")
        note = text_of(app.screen.query_one("#rr-note", Static))
        assert f"it will not be trained: {tuned_run.reranker.base_model}" in note, note
        assert f"{pairs} training queries are far too few" in note


async def test_train_says_a_declined_reranker_was_not_trained(tmp_path, fake_engine):
    ws = tmp_path / "ws"
    t = time.time() - 100
    write(
        ws / "events.jsonl",
        StageStarted(stage="rerank", time=t),
        StageFinished(
            stage="rerank",
            time=t + 1,
            summary={"trained": False, "reason": "no trained reranking head"},
        ),
        RunFinished(time=t + 2, seconds=2.0),
    )
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=WIDE) as pilot:
        await goto(app, pilot, "training")
        await pilot.pause(0.6)
        stages = str(app.screen.query_one("#stages", Static).render()).splitlines()
        assert "✔ rerank  not trained" in stages, stages
        log = "\n".join(line.text for line in app.screen.query_one(RichLog).lines)
        assert "✔ rerank: no reranker trained (no trained reranking head)" in log


# -- 16. the Train plot and log -------------------------------------------------------------


def test_step_ticks_are_whole_steps() -> None:
    assert step_ticks(1, 20) == [5, 10, 15, 20]
    assert step_ticks(1, 3) == [1, 2, 3]
    assert step_ticks(7, 7) == [7]
    for first, last in ((1, 7), (3, 250), (1, 12_345)):
        ticks = step_ticks(first, last)
        assert all(isinstance(t, int) and first <= t <= last for t in ticks)
        assert 1 <= len(ticks) <= 6


@pytest.mark.parametrize("size,rows", [(NARROW, 7), (WIDE, 10)])
async def test_train_plot_key_saving_and_log_height(tmp_path, fake_engine, size, rows):
    ws = tmp_path / "ws"
    events = ws / "events.jsonl"
    child = Child(ws)
    app = make_app(tmp_path, fake_engine)
    app.state.run_handle = child
    t = time.time() - 60
    logs = [
        TrainLog(stage="train", step=s, max_steps=7, epoch=s / 7, loss=3.0 - s / 10, time=t + s)
        for s in range(1, 8)
    ]
    write(
        events,
        StageStarted(stage="train", time=t),
        *logs,
        TrainLog(stage="train", split="eval", step=7, max_steps=7, loss=2.5, time=t + 8),
        Progress(
            stage="train", done=7, total=7, unit="steps", extra={"model": "embedder"}, time=t + 8
        ),
    )
    async with app.run_test(size=size) as pilot:
        await goto(app, pilot, "training", wait=False)
        screen = app.screen
        await wait_for(pilot, lambda: screen.view.run is not None, "events")
        await pilot.pause(0.7)
        plot = screen.query_one(LossPlot)
        assert plot.shown[1] == list(range(1, 8))
        status = text_of(screen.query_one("#train-status", Static))
        assert "embedder trained (7 steps): saving the model" in status, status
        assert "in train" in status, "how long the silent save has taken"
        assert screen.query_one("#train-log", RichLog).outer_size.height == rows
