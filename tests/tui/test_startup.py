"""Start-up stays light and the launcher routes subcommands and colour options correctly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.tui.launch import build_parser, is_tui_invocation, prepare_environment

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "litellm", "sentence_transformers", "transformers", "datasets")


def test_importing_the_app_pulls_in_no_ml_libraries():
    code = (
        "import sys, json; import tui.app, tui.launch; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    ("argv", "tui"),
    [([], True), (["tui", "--inline"], True), (["--theme", "x"], True), (["run", "c.toml"], False)],
)
def test_subcommands_go_to_the_cli_and_the_rest_to_the_wizard(argv, tui):
    assert is_tui_invocation(argv) is tui


def test_colour_options_reach_the_environment_before_textual(monkeypatch):
    monkeypatch.delenv("TEXTUAL_COLOR_SYSTEM", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    args = build_parser().parse_args(["--no-color", "--color-system", "256"])
    prepare_environment(args)
    import os

    assert os.environ["TEXTUAL_COLOR_SYSTEM"] == "256"
    assert os.environ["NO_COLOR"] == "1"


async def test_theme_is_remembered_and_a_bad_one_falls_back(tmp_path, user_config):
    from ragtune.tui.app import RagtuneApp
    from ragtune.tui.settings import UserSettings

    app = RagtuneApp(theme="high-contrast", runs_dir=tmp_path)
    async with app.run_test(size=(80, 24)):
        assert app.theme == "high-contrast"
    assert UserSettings.load().theme == "high-contrast"
    app = RagtuneApp(runs_dir=tmp_path)
    async with app.run_test(size=(80, 24)):
        assert app.theme == "high-contrast", "remembered from the last --theme"
    (user_config / "themes").mkdir(parents=True)
    (user_config / "themes" / "broken.toml").write_text(
        'name = "broken"\nprimary = "not-a-colour"\n'
    )
    app = RagtuneApp(theme="nope", runs_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "ragtune-dark"
        notes = [n.message for n in app._notifications]
        assert any("broken.toml" in m for m in notes)
        assert any("unknown theme 'nope'" in m for m in notes)


def test_bundled_themes_include_the_four_kinds():
    from ragtune.themes import load_themes

    loaded = load_themes()
    assert not loaded.errors
    assert {"ragtune-dark", "ragtune-light", "high-contrast", "ansi-dark"} <= set(loaded.names)
    ansi = next(t for t in loaded.themes if t.name == "ansi-dark")
    assert ansi.ansi


def test_downsample_keeps_spikes_and_bounds_points():
    from ragtune.tui.run_model import downsample

    points = [(float(i), 1.0) for i in range(1000)]
    points[537] = (537.0, 9.0)
    xs, ys = downsample(points, 50)
    assert len(xs) <= 100 and 9.0 in ys and xs == sorted(xs)
