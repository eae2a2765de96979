"""``metrics.json``: the one reader and writer of the results file that several stages share.

Each stage owns one top-level section (``embedder``, ``deploy``, ``reranker``). A write
replaces only its caller's section, atomically, so a crash mid-write never leaves a half file
and a stage never drops another's results. A damaged file read back is a named error with the
fix; a damaged file written to is started afresh: the stages whose sections it lost see them
missing (``ragtune status`` says so) and run again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ragtune.engine.core.errors import RagtuneError


class MetricsFileError(RagtuneError):
    """metrics.json exists but does not read as a JSON object (cut off, edited, overwritten)."""


class MetricsFile:
    """``metrics.json`` of a workspace (``MetricsFile(ws.metrics_path)``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> dict[str, Any]:
        """Every section; ``{}`` when no stage has written the file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise self._damaged(exc) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self._damaged(exc) from exc
        if not isinstance(data, dict):
            raise self._damaged(TypeError(f"a JSON {type(data).__name__}, not an object"))
        return data

    def section(self, key: str) -> Any:
        """One stage's section, or None when that stage has not written it."""
        return self.read().get(key)

    def problem(self, key: str) -> str:
        """Why ``key``'s section cannot be used ("" when it can), for the stage output checks."""
        try:
            data = self.read()
        except MetricsFileError as exc:
            return f"cannot be read ({type(exc.__cause__).__name__})"
        return "" if key in data else f"has no {key!r} results"

    def write(self, key: str, value: Any) -> None:
        """Replace ``key``'s section and keep the others; the file is swapped in whole."""
        try:
            data = self.read()
        except MetricsFileError:
            data = {}
        data[key] = value
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # per process, so two writers never share a half-written file; mode as any new file
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def text(self) -> str:
        """The file as JSON text (checked first, so a damaged one is the named error)."""
        return json.dumps(self.read(), indent=2, sort_keys=True, default=str)

    def _damaged(self, cause: Exception) -> MetricsFileError:
        detail = f"{type(cause).__name__}: {cause}".splitlines()[0]
        return MetricsFileError(
            f"cannot be read ({detail})",
            where=str(self.path),
            hint="run `ragtune run` again: the stages whose results it held run again and "
            "rewrite it (or delete the file to start it afresh)",
        )
