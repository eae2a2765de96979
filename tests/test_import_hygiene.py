"""The engine stays free of Textual, and importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_engine_never_imports_textual_or_tui() -> None:
    mods = _modules_after(
        "import ragtune.engine, ragtune.engine.api, ragtune.engine.cli, ragtune.engine.pipeline, "
        "ragtune.engine.config, ragtune.engine.core.events"
    )
    assert not any(m == "textual" or m.startswith("textual.") for m in mods)
    assert not any(m == "ragtune.tui" or m.startswith("ragtune.tui.") for m in mods)


def test_engine_import_is_light() -> None:
    mods = _modules_after(
        "import ragtune.engine.api, ragtune.engine.cli, ragtune.engine.config, ragtune.engine.core.events"
    )
    for heavy in ("torch", "litellm", "sentence_transformers", "transformers", "datasets"):
        assert heavy not in mods, heavy
