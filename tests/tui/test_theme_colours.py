"""Colours in the wizard come from the theme: text drawn in Python names $success, $error and
$warning (or a component class styled with them), never a colour name a theme cannot change."""

from __future__ import annotations

import re
from pathlib import Path

from test_app_flow import make_app
from textual.color import Color
from textual.content import Content
from textual.widgets import Static

from ragtune import tui

COLOUR_NAME = re.compile(
    r"""["'](?:(?:bold|dim|italic|reverse|underline) )*"""
    r"""(?:red|green|yellow|blue|magenta|cyan|white|black|orange|gr[ae]y)\b[^"']*["']"""
)
HEX = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")


def test_no_colour_names_or_hex_codes_in_the_wizards_code() -> None:
    found = []
    for path in sorted(Path(tui.__file__).parent.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0] if not line.lstrip().startswith(("'", '"')) else line
            if COLOUR_NAME.search(code) or HEX.search(line.replace('"#', '"')):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


async def colours_under(tmp_path: Path, theme: str) -> tuple[dict, Color, object]:
    """The Results step's marks, the theme's success colour, and that of a drawn $success."""
    app = make_app(tmp_path, None, theme=theme, remember_theme=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.goto("results")
        await pilot.pause()
        assert app.theme == theme
        screen = app.screen
        marks = screen.colours()
        static = Static(Content.styled("✔ connected", "$success"))
        await screen.mount(static)
        await pilot.pause()
        drawn = next(s.style.color for s in static.render_line(0) if s.text.strip())
        return marks, Color.parse(app.current_theme.success), drawn


async def test_marks_and_notes_take_the_themes_colours(tmp_path: Path) -> None:
    """Under two themes whose colours differ: a colour name would draw the same in both."""
    dark, dark_success, dark_drawn = await colours_under(tmp_path, "ragtune-dark")
    light, light_success, light_drawn = await colours_under(tmp_path, "ragtune-light")
    assert dark_success != light_success, "the two themes differ, or this proves nothing"
    for marks, success in ((dark, dark_success), (light, light_success)):
        assert marks["gain"].color == success.rich_color
        assert marks["best"].bold and marks["best"].color == success.rich_color
    assert dark_drawn == dark_success.rich_color
    assert light_drawn == light_success.rich_color
