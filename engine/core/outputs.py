"""What each stage promises to leave in the workspace, and a cheap check that it is there and reads.

A stage is done only when its record matches *and* its outputs pass these checks, so a deleted
or damaged file makes the stage "to do" (with the problem named in ``ragtune status``) and the
next run rebuilds it, instead of a later stage failing on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.core.metrics_file import MetricsFile

if TYPE_CHECKING:
    from ragtune.engine.core.workspace import Workspace


@dataclass(frozen=True)
class Output:
    """``path`` finds the output in a workspace; ``check`` returns a problem, or "" when it
    reads; ``when`` says whether the stage's record promises it at all (a reranker that was
    not trained leaves no model folder)."""

    name: str
    path: Callable[[Workspace], Path]
    check: Callable[[Path], str]
    when: Callable[[dict[str, Any]], bool] | None = None

    def problem(self, ws: Workspace, summary: dict[str, Any]) -> str:
        if self.when is not None and not self.when(summary):
            return ""
        path = self.path(ws)
        rel = _relative(path, ws.root)
        if not path.exists():
            return f"{rel} is missing"
        found = self.check(path)
        return f"{rel} {found}" if found else ""


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def parquet_reads(path: Path) -> str:
    """The footer holds the schema and row groups: a truncated file has none."""
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(str(path)).metadata  # noqa: B018
    except Exception as exc:
        return f"cannot be read ({type(exc).__name__})"
    return ""


def json_reads(path: Path) -> str:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"cannot be read ({type(exc).__name__})"
    return ""


def metrics_has(key: str) -> Callable[[Path], str]:
    """metrics.json is shared: each stage checks the top-level section it owns."""
    return lambda path: MetricsFile(path).problem(key)


def is_file(path: Path) -> str:
    return "" if path.is_file() else "is not a file"


def dataset_reads(path: Path) -> str:
    """A ``save_to_disk`` folder names its splits in dataset_dict.json; each split folder
    holds state.json and the arrow files it lists."""
    splits = path / "splits"
    meta = splits / "dataset_dict.json"
    if not meta.is_file():
        return "has no splits/dataset_dict.json"
    try:
        names = json.loads(meta.read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return "has an unreadable splits/dataset_dict.json"
    for name in names:
        state = splits / name / "state.json"
        try:
            files = json.loads(state.read_text(encoding="utf-8"))["_data_files"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"has an unreadable split {name!r}"
        for item in files:
            if not (splits / name / item["filename"]).is_file():
                return f"misses {item['filename']} of split {name!r}"
    if not (path / "corpus.jsonl").is_file():
        return "has no corpus.jsonl"
    return ""


WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
# Modules whose folder holds weights of their own (a Pooling folder holds only its config).
WEIGHTED = ("Transformer", "Dense")


def model_reads(path: Path) -> str:
    """What ``SentenceTransformer(path)`` or ``CrossEncoder(path)`` needs: the modules that
    modules.json lists, each weighted one with its weights, and a config.json that parses."""
    if not path.is_dir():
        return "is not a folder"
    folders = [path]
    if (path / "modules.json").is_file():
        try:
            modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
            folders = [
                path / m.get("path", "")
                for m in modules
                if str(m.get("type", "")).rsplit(".", 1)[-1] in WEIGHTED
            ]
        except (OSError, ValueError, AttributeError, TypeError):
            return "has an unreadable modules.json"
    for folder in folders:
        where = "" if folder == path else f" in {folder.name}"
        if not folder.is_dir():
            return f"misses its module folder {folder.name}"
        if not any((folder / name).is_file() for name in WEIGHTS):
            return f"has no model weights{where}"
        if not (folder / "config.json").is_file():
            return f"has no config.json{where}"
        problem = json_reads(folder / "config.json")
        if problem:
            return f"has a config.json{where} that {problem}"
    return ""


def problems(outputs: tuple[Output, ...], ws: Workspace, summary: dict[str, Any]) -> list[str]:
    """Every promised output that is missing or does not read, by name, for status and logs."""
    return [p for out in outputs if (p := out.problem(ws, summary))]
