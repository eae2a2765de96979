"""The few per-user choices the wizard remembers between sessions (the theme), in a small JSON file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


def config_dir() -> Path:
    """``$RAGTUNE_CONFIG_DIR`` (tests, portable installs) or the platform's user config dir."""
    override = os.environ.get("RAGTUNE_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("ragtune", appauthor=False))


@dataclass
class UserSettings:
    theme: str = ""
    keymap: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> UserSettings:
        path = config_dir() / "settings.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        keymap = data.get("keymap", {})
        if not isinstance(keymap, dict):
            keymap = {}
        return cls(
            theme=str(data.get("theme", "")), keymap={str(k): str(v) for k, v in keymap.items()}
        )

    def save(self) -> None:
        """Best effort: a read-only home must not break the app."""
        folder = config_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "settings.json.tmp"
            tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
            tmp.replace(folder / "settings.json")
        except OSError:
            pass

    @property
    def themes_dir(self) -> Path:
        return config_dir() / "themes"
