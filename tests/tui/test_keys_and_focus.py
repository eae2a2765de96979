"""Pilot tests of what a keyboard user sees at 80x24: focus, ticks, the footer, the chart."""

from __future__ import annotations

import pytest
from test_app_flow import make_app, settle
from textual import events
from textual.widgets import Footer, Input, Label, Select, TabbedContent, TextArea

from ragtune.tui.app import RagtuneApp
from ragtune.tui.commands import WizardCommands
from ragtune.tui.screens.sources import PickTree
from ragtune.tui.widgets.plots import GroupedBars
from ragtune.tui.widgets.step_bar import STEP_NAMES
from ragtune.tui.widgets.tickbox import TickBox

SMALL = (80, 24)
STEPS = [step for step in STEP_NAMES if step != "export"]  # the last step has no F3 Next


def screen_lines(app: RagtuneApp) -> list[str]:
    """The screen as the user reads it: one string per terminal row."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


async def test_ticked_and_unticked_boxes_differ_in_shape(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("sources")
        await pilot.pause()
        box = app.screen.query_one("#type-pdf", TickBox)
        assert box.render().plain.startswith("[✔]")
        box.value = False
        await pilot.pause()
        assert box.render().plain.startswith("[ ]")
        assert any("[ ] pdf" in line for line in screen_lines(app))
        assert any("[✔] docx" in line for line in screen_lines(app))


async def test_file_tree_ticks_a_picked_file_at_once(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("sources")
        await pilot.pause(0.3)
        tree = app.screen.query_one(PickTree)
        tree.focus()
        await pilot.pause(0.3)
        line = tree.cursor_line
        assert not any("✓" in row for row in screen_lines(app))
        await pilot.press("f4")
        await pilot.pause()
        assert tree.cursor_line == line, "the cursor has not moved"
        assert any("✓" in row for row in screen_lines(app)), "the mark is drawn at once"
        await pilot.press("f4")
        await pilot.pause()
        assert not any("✓" in row for row in screen_lines(app)), "and removed at once"


async def test_focused_empty_field_marks_its_label(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("llm")
        await pilot.pause()
        screen = app.screen
        model = screen.query_one("#llm-form-model", Input)
        model.value = ""
        model.focus()
        await pilot.pause()
        label = screen.query_one("#row-llm-form-model Label", Label)
        assert label.rich_style.reverse, "an empty focused field still shows where focus is"
        other = screen.query_one("#row-llm-form-api_base Label", Label)
        assert not other.rich_style.reverse
        select = screen.query_one("#gen-form-generator", Select)
        select.focus()
        await pilot.pause()
        assert screen.query_one("#row-gen-form-generator Label", Label).rich_style.reverse
        assert not label.rich_style.reverse


@pytest.mark.parametrize("step", STEPS)
async def test_footer_fits_at_80_columns(tmp_path, fake_engine, docs, step):
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=SMALL) as pilot:
        app.goto(step)
        await pilot.pause(0.3)
        # On a loaded machine the footer can paint a little after the screen switch.
        for _ in range(50):
            footer = screen_lines(app)[-1]
            if footer.strip():
                break
            await pilot.pause(0.1)
        assert footer.rstrip().endswith("^p palette"), footer
        assert app.screen.query_one(Footer)
        for binding in app.screen.BINDINGS:
            if getattr(binding, "show", False) and binding.description:
                key = app.get_key_display(binding)
                assert f"{key} {binding.description}" in footer, (key, footer)
        assert "f1 Help" in footer and "f3 Next" in footer


async def test_every_binding_is_in_the_palette(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("samples")
        await pilot.pause()
        titles = [title for title, _, _ in WizardCommands(app.screen)._key_commands()]
        for wanted in ("f7: Accept", "f8: Reject", "f6: Generate", "^s: Save", "^q: Quit"):
            assert any(wanted in t for t in titles), (wanted, titles)


async def test_results_chart_keeps_legend_and_groups_apart(tmp_path, fake_engine, finished_run):
    for size in (SMALL, (120, 40)):
        app = make_app(tmp_path, fake_engine, workspace=finished_run)
        async with app.run_test(size=size) as pilot:
            app.goto("results")
            await pilot.pause(0.3)
            await settle(app)
            await pilot.pause(0.3)
            chart = app.screen.query_one(GroupedBars)
            lines = chart.build(chart.content_size.width).plain.splitlines()
            assert "░░ base" in lines[1] and "tuned" in lines[1].split("██ ")[-1], (
                "legend is a caption line"
            )
            bars = lines[2:]
            assert bars and len(bars) % 2 == 0, "one base and one tuned line per dim"
            for base, tuned in zip(bars[::2], bars[1::2], strict=True):
                assert "░" in base and "█" not in base
                assert "█" in tuned and "░" not in tuned
                assert base.split()[0].isdigit(), "each group starts with its dim"
            assert max(len(line) for line in bars) <= chart.content_size.width
            assert chart.content_size.width >= 20


async def test_llm_screen_loads_litellm_before_the_first_test(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    app.cfg.generation.llm.model = "openai/qwen"
    async with app.run_test(size=SMALL) as pilot:
        app.goto("llm")
        await pilot.pause()
        await settle(app)
        assert ("warm_llm", ()) in fake_engine.calls


async def test_llm_free_does_not_load_litellm(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    app.cfg.generation.generator = "llm-free"
    async with app.run_test(size=SMALL) as pilot:
        app.goto("llm")
        await pilot.pause()
        await settle(app)
        assert ("warm_llm", ()) not in fake_engine.calls
        app.screen.query_one("#gen-form-generator", Select).value = "litellm"
        app.screen.query_one("#llm-form-model", Input).value = "openai/qwen"
        await pilot.pause()
        await settle(app)
        assert ("warm_llm", ()) in fake_engine.calls


async def test_results_table_header_lines_up_on_first_paint(tmp_path, fake_engine, finished_run):
    app = make_app(tmp_path, fake_engine, workspace=finished_run)
    async with app.run_test(size=(120, 40)) as pilot:
        app.goto("results")
        await pilot.pause(0.3)
        await settle(app)
        await pilot.pause(0.3)
        lines = screen_lines(app)
        i = next(n for n, line in enumerate(lines) if " dim  metric" in line)
        header, first = lines[i], lines[i + 1]
        values = first.split()
        # numbers and changes are right-aligned, under right-aligned labels
        for label, value in (
            ("base", values[2]),
            ("fine-tuned", values[3]),
            ("vs base", values[5]),
        ):
            assert header.index(label) + len(label) == first.index(value) + len(value), (
                header,
                first,
            )


async def test_test_connection_uses_what_was_just_typed(tmp_path, fake_engine):
    """F5 straight after typing: the fields' Valid messages have not arrived yet."""
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("llm")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#llm-form-model", Input).value = "openai/qwen"
        screen.query_one("#llm-form-api_base", Input).value = "http://127.0.0.1:9"
        screen.action_test_connection()  # no pause: nothing typed has been committed yet
        await settle(app)
        await pilot.pause()
        assert ("test_connection", ("openai/qwen", False)) in fake_engine.calls
        assert "connection refused at http://127.0.0.1:9" in str(
            screen.query_one("#llm-result").render()
        )


@pytest.mark.parametrize("step", ["llm", "settings"])
async def test_tab_moves_between_fields_only(tmp_path, fake_engine, step):
    """Every Tab stop is a field whose label lights up: no invisible stop on the scroller."""
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SMALL) as pilot:
        app.goto(step)
        await pilot.pause()
        for _ in range(6):
            await pilot.press("tab")
            await pilot.pause()
            focused = app.focused
            assert isinstance(focused, (Input, Select, TickBox)), focused
            label = focused.parent.query_one(Label) if focused.parent else None
            assert label is not None and label.rich_style.reverse, focused


async def test_text_typed_right_after_tab_lands_in_the_next_field(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("llm")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#llm-form-model", Input).focus()
        await pilot.pause()
        for key in ["o", "k", "tab", "h", "i"]:  # posted back to back, as a paste or tmux does
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await pilot.pause(0.3)
        assert screen.query_one("#llm-form-model", Input).value == "ok"
        assert screen.query_one("#llm-form-api_base", Input).value.endswith("hi")


def _burst(app: RagtuneApp, *keys: str) -> None:
    """Keys posted back to back, as a slow SSH link or tmux delivers them."""
    named = {"ctrl+u": "\x15", "backspace": "\x7f"}
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else named.get(key)))


async def test_editing_keys_in_a_burst_apply_in_order(tmp_path, fake_engine):
    """ctrl+u then 2 in the epochs field gives 2, not an empty field (Textual ran the bound
    edit after the next typed character: Textualize/textual#6605)."""
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("settings")
        await pilot.pause()
        epochs = app.screen.query_one("#emb-form-epochs", Input)
        epochs.focus()
        await pilot.pause()
        for _ in range(5):
            _burst(app, "end", "ctrl+u", "2")
            await pilot.pause(0.1)
            assert epochs.value == "2"
            _burst(app, "backspace", "3", "left", "backspace", "1")
            await pilot.pause(0.1)
            assert epochs.value == "13"
        assert app.cfg.embedder.epochs == 13


async def test_description_edits_in_a_burst_apply_in_order(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("sources")
        await pilot.pause()
        app.screen.query_one(TabbedContent).active = "description-pane"
        await pilot.pause()
        area = app.screen.query_one("#description", TextArea)
        area.text = ""
        area.focus()
        await pilot.pause()
        _burst(app, "b", "a", "backspace", "c", "left", "left", "delete", "d")
        await pilot.pause(0.2)
        assert area.text == "dc"
