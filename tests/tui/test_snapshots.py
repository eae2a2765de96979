"""SVG snapshots of every step at 120x40 and 80x24, from a fake engine and a recorded run."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import METRICS, RUN_EVENTS, FakeEngine
from test_app_flow import settle

from ragtune.engine.config import RunConfig
from ragtune.tui.app import RagtuneApp
from ragtune.tui.widgets.step_bar import STEP_NAMES

SIZES = [(120, 40), (80, 24)]
STEPS = list(STEP_NAMES)  # every step the wizard has: a new screen gets its snapshot
FIXED = Path("/tmp/ragtune-snapshots")


@pytest.fixture(autouse=True, scope="module")
def own_fixed_dir() -> Iterator[None]:
    """Two test runs on one machine (a clone and a worktree) would empty each other's folder."""
    with open(f"{FIXED}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_app(step: str) -> RagtuneApp:
    """Fixed paths, so the paths shown on screen are the same on every machine."""
    if FIXED.exists():
        shutil.rmtree(FIXED)
    docs = FIXED / "docs"
    (docs / "handbook").mkdir(parents=True)
    (docs / "handbook" / "leave.md").write_text("# Leave\n")
    (docs / "handbook" / "sla.txt").write_text("SLA\n")
    ws = FIXED / "runs" / "handbook"
    (ws / ".state").mkdir(parents=True)
    if step in ("training", "results", "export"):
        shutil.copy(RUN_EVENTS, ws / "events.jsonl")
        shutil.copy(METRICS, ws / "metrics.json")
    cfg = RunConfig()
    cfg.run.name = "handbook"
    cfg.run.workspace = "."
    cfg.sources.paths = [str(docs / "handbook")]
    cfg.save(ws / "config.toml")
    app = RagtuneApp(
        engine=FakeEngine(), runs_dir=FIXED / "runs", browse_root=docs, remember_theme=False
    )
    if step != "start":
        app.open_workspace(ws)
    return app


def test_every_step_has_one_screen_and_one_place_in_the_bar() -> None:
    """The step bar's list is the registry: the palette, the snapshots and these modes read it."""
    assert list(RagtuneApp.MODES) == list(STEP_NAMES)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("step", STEPS)
def test_step_snapshot(snap_compare, step: str, size: tuple[int, int]) -> None:
    app = build_app(step)

    async def go(pilot) -> None:
        pilot.app.animation_level = "none"
        pilot.app.goto(step)
        await pilot.pause(0.2)
        if step in ("chunking", "samples"):
            await pilot.press("f5")
        await pilot.pause(0.5)
        await settle(pilot.app)
        for _ in range(3):  # tables size their columns on idle; let every deferred layout land
            await pilot.pause(0.2)
        pilot.app.screen.set_focus(None)  # no blinking cursor in the picture

    assert snap_compare(app, terminal_size=size, run_before=go)


def test_help_snapshot(snap_compare) -> None:
    app = build_app("start")

    async def go(pilot) -> None:
        pilot.app.animation_level = "none"
        pilot.app.screen.set_focus(None)

    assert snap_compare(app, terminal_size=(80, 24), press=["f1"], run_before=go)
