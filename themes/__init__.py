"""The app's colour themes: TOML data files turned into Textual ``Theme`` objects."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUNDLED_DIR = Path(__file__).resolve().parent
DEFAULT_THEME = "ragtune-dark"
BUNDLED = ("ragtune-dark", "ragtune-light", "high-contrast", "ansi-dark")


@dataclass
class ThemeLoad:
    """Themes that parsed, and one readable line per file that did not (shown as a notification)."""

    themes: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.themes]


def theme_from_data(data: dict[str, Any], source: str = "") -> Any:
    """Build and colour-check a Theme, so a typo fails here and not mid-render."""
    from textual.theme import Theme

    allowed = {f.name for f in fields(Theme)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    if not data.get("name") or not data.get("primary"):
        raise ValueError("a theme needs at least 'name' and 'primary'")
    theme = Theme(**data)
    theme.to_color_system().generate()
    return theme


def load_themes(*extra_dirs: Path) -> ThemeLoad:
    """The bundled themes plus ``*.toml`` in extra dirs (a user's own); later files win by name."""
    out = ThemeLoad()
    by_name: dict[str, Any] = {}
    for folder in (BUNDLED_DIR, *extra_dirs):
        if not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
                theme = theme_from_data(data, str(path))
            except Exception as exc:  # a bad user theme must never stop the app
                out.errors.append(f"theme {path.name}: {exc}")
                continue
            by_name[theme.name] = theme
    out.themes = list(by_name.values())
    return out
