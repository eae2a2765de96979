"""The training settings show, under the embedder's batch size, the batch the engine proposes
for the detected GPU memory and why; the GPU is injected into the engine's GPU probe (this
machine has none), the proposal itself is the real engine's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_app_flow import make_app, settle
from textual.widgets import Input, Static

from ragtune.engine.core import gpu
from ragtune.engine.core.events import GpuSample
from ragtune.engine.core.gpu import propose_batch_size
from ragtune.tui.engine_client import EngineClient

WIDE = (120, 36)
RTX = GpuSample(name="NVIDIA GeForce RTX 4060", memory_total_mb=8188.0)


def _line(app) -> str:
    return str(app.screen.query_one("#batch-proposal", Static).render()).replace("\n", " ")


async def _proposed(app, pilot, start: str) -> str:
    """The line once it starts with ``start``: the proposal's worker starts when the settings
    check ends, so it lands a moment after the check."""
    for _ in range(100):
        await settle(app)
        if _line(app).startswith(start):
            break
        await pilot.pause(0.05)
    return _line(app)


async def test_the_settings_propose_a_batch_for_the_detected_gpu(
    tmp_path: Path, minilm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu, "visible_gpus", lambda: [RTX])
    app = make_app(tmp_path, EngineClient())
    app.cfg.embedder.base_model = str(minilm_path)
    app.cfg.embedder.max_seq_length = 256
    # Computed here, before the wizard's workers start (their imports run in threads).
    expected = propose_batch_size(app.cfg.embedder, memory_gib=8188 / 1024, gpu=RTX.name)
    shorter = propose_batch_size(
        replace(app.cfg.embedder, max_seq_length=128), memory_gib=8188 / 1024, gpu=RTX.name
    )
    assert shorter.batch_size > expected.batch_size
    async with app.run_test(size=WIDE) as pilot:
        app.goto("settings")
        await pilot.pause()
        start = f"proposed for this GPU: batch_size = {expected.batch_size};"
        line = await _proposed(app, pilot, start)
        assert line.startswith(start), line
        assert "NVIDIA GeForce RTX 4060 (8 GiB): the model (~22M parameters)" in line
        assert "2 × 256 tokens" in line and "fit in 80% of memory" in line
        # Under the batch-size field, before the next field.
        note = app.screen.query_one("#batch-proposal", Static)
        assert app.screen.query_one("#emb-form-batch_size", Input).region.y < note.region.y
        assert note.region.y < app.screen.query_one("#emb-form-learning_rate", Input).region.y

        # Shorter inputs need less memory per row: the proposal follows the form.
        app.screen.query_one("#emb-form-max_seq_length", Input).value = "128"
        await pilot.pause()
        assert app.cfg.embedder.max_seq_length == 128
        start = f"proposed for this GPU: batch_size = {shorter.batch_size};"
        line = await _proposed(app, pilot, start)
        assert line.startswith(start) and "2 × 128 tokens" in line, line


async def test_without_a_gpu_the_line_says_cpu(
    tmp_path: Path, minilm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu, "visible_gpus", lambda: [])
    app = make_app(tmp_path, EngineClient())
    app.cfg.embedder.base_model = str(minilm_path)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("settings")
        await pilot.pause()
        batch = app.cfg.embedder.batch_size
        line = await _proposed(app, pilot, "CPU:")
        assert line == f"CPU: no GPU detected: the batch stays at {batch}"
