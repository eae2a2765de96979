"""The training settings step keeps the UI thread free: the model Hub probe and the benchmark
folder's check run in workers, a superseded answer is dropped, and F3 waits for the verdict.

Slowness is injected by holding ``ragtune.engine.core.models.hub_reachable`` on an event (a slow or
silent network) and by stretching the pause in typing that starts the folder's check; the
checks themselves are the engine's.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from test_app_flow import make_app, settle
from test_inputs_flow import text_of
from textual.widgets import Input, Select, Static

from ragtune.tui.screens.training_settings import TrainingSettingsScreen

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
GPU_MODEL = "nomic-ai/modernbert-embed-base"
WIDE = (120, 40)


class HeldProbe:
    """``hub_reachable`` that waits for ``release`` before it answers, recording its thread."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.threads: list[threading.Thread] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, timeout: float = 3.0) -> bool:
        self.threads.append(threading.current_thread())
        self.started.set()
        assert self.release.wait(30), "the test never released the probe"
        return self.answer


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 30)


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_the_hub_probe_of_a_preset_leaves_the_screen_responsive_and_a_stale_answer_is_dropped(
    tmp_path: Path, fake_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.core import models

    assert not models.available_here(GPU_MODEL), "the test needs a model this machine lacks"
    probe = HeldProbe(answer=True)  # a Hub that answers "reachable", late
    monkeypatch.setattr(models, "hub_reachable", probe)
    app = make_app(tmp_path, fake_engine)
    app.cfg.embedder.base_model = app.cfg.reranker.base_model = MINILM
    async with app.run_test(size=WIDE) as pilot:
        app.goto("settings")
        await pilot.pause()
        screen = app.screen
        note = screen.query_one("#preset-note", Static)
        screen.query_one("#preset", Select).value = "GPU default"
        await pilot.pause()
        await wait_for(probe.started)

        # applied at once but for its model, which waits on the probe
        assert app.cfg.embedder.batch_size == 64 and app.cfg.embedder.loss == "cached_mnrl"
        assert app.cfg.embedder.base_model == MINILM
        assert f"checking that embedder {GPU_MODEL} can be loaded here" in text_of(note)
        # the screen handles keys while the probe is out
        epochs = screen.query_one("#emb-form-epochs", Input)
        epochs.focus()
        await pilot.press("end", *["backspace"] * len(epochs.value), "5")
        await pilot.pause()
        assert app.cfg.embedder.epochs == 5.0
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings", "the preset's model is not settled yet"
        assert "still checking that its base models can be loaded here" in notes(app)[-1]
        assert not probe.release.is_set(), "all of the above happened while the probe was out"

        # another preset meanwhile: the first probe's late "reachable" must not bring its model
        screen.query_one("#preset", Select).value = "large model, LoRA"
        await pilot.pause()
        probe.release.set()
        await settle(app)
        await pilot.pause(0.3)
        await settle(app)
        assert app.cfg.embedder.base_model == MINILM
        assert app.cfg.embedder.lora and app.cfg.embedder.batch_size == 32
        assert "'large model, LoRA' applied" in text_of(note)
        assert "GPU default" not in text_of(note) and "checking" not in text_of(note)

        # the answer that is not superseded is acted on
        screen.query_one("#preset", Select).value = "GPU default"
        await pilot.pause()
        await settle(app)
        await pilot.pause()
        assert app.cfg.embedder.base_model == GPU_MODEL
        assert "embedder.base_model" in text_of(note) and "⚠" not in text_of(note)
    assert probe.threads and all(t is not threading.main_thread() for t in probe.threads)


async def test_a_preset_whose_model_cannot_load_here_keeps_the_current_one_once_the_probe_says(
    tmp_path: Path, fake_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.core import models

    probe = HeldProbe(answer=False)
    monkeypatch.setattr(models, "hub_reachable", probe)
    app = make_app(tmp_path, fake_engine)
    app.cfg.embedder.base_model = app.cfg.reranker.base_model = MINILM
    async with app.run_test(size=WIDE) as pilot:
        app.goto("settings")
        await pilot.pause()
        note = app.screen.query_one("#preset-note", Static)
        app.screen.query_one("#preset", Select).value = "GPU default"
        await pilot.pause()
        await wait_for(probe.started)
        assert "⚠" not in text_of(note), "nothing is said about the Hub before it answers"
        probe.release.set()
        await settle(app)
        await pilot.pause()
        assert app.cfg.embedder.base_model == MINILM
        said = " ".join(text_of(note).split())
        assert "✔ preset 'GPU default' applied" in said
        assert f"⚠ no model Hub here, kept the current model for: embedder {GPU_MODEL}" in said
        assert any("no model Hub here" in n for n in notes(app))
        assert ("unloadable_models", ([GPU_MODEL],)) in fake_engine.calls


async def test_the_benchmark_folder_is_checked_once_typing_pauses_and_f3_waits_for_the_verdict(
    tmp_path: Path, fake_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Typing never pauses long enough here: only F3 can start the check.
    monkeypatch.setattr(TrainingSettingsScreen, "BENCHMARK_DELAY_S", 30.0)
    app = make_app(tmp_path, fake_engine)

    def checks() -> list[str]:
        return [args[0] for name, args in fake_engine.calls if name == "check_benchmark"]

    async with app.run_test(size=WIDE) as pilot:
        app.goto("settings")
        await pilot.pause()
        screen = app.screen
        error = screen.query_one("#err-eval-form-benchmark", Static)
        pending = screen.query_one("#bench-note", Static)
        bench = screen.query_one("#eval-form-benchmark", Input)
        bench.focus()
        await pilot.press(*"nope")
        await pilot.pause()
        assert bench.value == "nope"
        assert checks() == [], "no check per key"
        assert text_of(error) == "" and f"checking {tmp_path / 'nope'}" in text_of(pending)

        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings"
        assert f"still checking {tmp_path / 'nope'}" in notes(app)[-1]
        await settle(app)
        await pilot.pause()
        assert checks() == [str(tmp_path / "nope")], "one check, of the whole path"
        said = " ".join(text_of(error).split())
        assert f"no folder at {tmp_path / 'nope'}: check the path" in said, said
        assert text_of(pending) == ""
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings", "a missing folder blocks the step"
        assert "no folder at" in notes(app)[-1]

        labelled = tmp_path / "labelled"
        labelled.mkdir()
        (labelled / "queries.jsonl").write_text('{"_id": "q1", "text": "How long is leave?"}\n')
        (labelled / "answers.tsv").write_text("query-id\tsource-file\tquote\nq1\t\t25 days\n")
        bench.value = "labelled"
        await pilot.pause()
        assert text_of(error) == "", "the old folder's verdict is not this one's"
        assert "checking" in text_of(pending), "and the new one is not yet called good"
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings"
        await settle(app)
        await pilot.pause()
        assert text_of(error) == "" and text_of(pending) == ""
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode != "settings"
        assert app.cfg.eval.benchmark == str(labelled)
        assert checks() == [str(tmp_path / "nope"), str(labelled)]


async def test_the_gpl_teachers_hub_probe_runs_in_the_settings_check_worker(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_real_engine import tiny_run_config

    from ragtune.engine.core import models
    from ragtune.tui.engine_client import EngineClient

    threads: list[threading.Thread] = []

    def offline(timeout: float = 3.0) -> bool:
        threads.append(threading.current_thread())
        return False

    monkeypatch.setattr(models, "hub_reachable", offline)
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = tiny_run_config(tmp_path, tiny_bert)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("settings")
        await pilot.pause()
        app.screen.query_one("#preset", Select).value = "GPL pseudo-labels"
        await pilot.pause()
        await settle(app)
        await pilot.pause(0.2)
        error = text_of(app.screen.query_one("#err-emb-form-pseudo_label_model", Static))
        assert "loss gpl needs this trained cross-encoder" in " ".join(error.split())
    assert threads and all(t is not threading.main_thread() for t in threads)


async def test_creating_a_run_probes_the_hub_in_a_worker_and_a_superseded_answer_is_dropped(
    tmp_path: Path, fake_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.core import models

    probe = HeldProbe(answer=False)  # no Hub: the new run gets the packaged model
    monkeypatch.setattr(models, "hub_reachable", probe)
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        name = app.screen.query_one("#run-name", Input)
        name.focus()
        await pilot.press(*"first", "f5")
        await wait_for(probe.started)
        await pilot.pause()
        status = text_of(app.screen.query_one("#start-status", Static))
        assert "creating 'first': checking whether the model Hub can be reached" in status
        # the screen takes keys while the probe is out; another name makes that F5 stale
        await pilot.press(*["backspace"] * 5, *"second")
        await pilot.pause()
        assert name.value == "second" and not probe.release.is_set()
        probe.release.set()
        await settle(app)
        await pilot.pause()
        assert app.current_mode == "start", "the answer about 'first' is not acted on"
        assert not (tmp_path / "runs" / "first").exists()

        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        assert app.current_mode == "sources" and app.cfg.run.name == "second"
        assert app.cfg.embedder.base_model == MINILM, "offline: the packaged model"
    assert len(probe.threads) == 2
    assert all(t is not threading.main_thread() for t in probe.threads)
