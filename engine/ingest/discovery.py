"""Which files a run reads: paths, folders walked with include/exclude globs."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from ragtune.engine.config import SourcesConfig
from ragtune.engine.core.errors import InputError
from ragtune.engine.ingest.readers import READERS

FILE_SUFFIXES = set(READERS)
"""Every file type a reader takes."""
DATASET_BUILDERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Globs over relative posix paths: ``**/`` spans folders, ``*`` stays within one name.

    A pattern without a slash matches any single path component, as in .gitignore,
    so ``*.md`` finds markdown at every depth and ``drafts`` excludes a folder.
    """
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    if "/" not in pattern.strip("/"):
        return re.compile(f"(?:^|.*/){body}(?:/.*)?$", re.IGNORECASE)
    return re.compile(f"{body.lstrip('/')}(?:/.*)?$", re.IGNORECASE)


def _matches(rel: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.match(rel) for p in patterns)


def _is_hidden(rel: str) -> bool:
    """Dot folders (.git) and Office lock files (~$x.docx) are never documents."""
    return any(part.startswith((".", "~$")) for part in rel.split("/"))


def discover_files(
    cfg: SourcesConfig,
    base_dir: Path,
    *,
    missing: str = "error",
    on_missing: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Files named in ``paths`` plus folder contents that pass include and exclude, sorted."""
    return sorted(discover_sources(cfg, base_dir, missing=missing, on_missing=on_missing))


def discover_sources(
    cfg: SourcesConfig,
    base_dir: Path,
    *,
    missing: str = "error",
    on_missing: Callable[[Path], None] | None = None,
) -> dict[Path, str]:
    """Every file to read, sorted, with the name it goes by (see ``source_names``).

    A file named directly is always kept (a wrong type is reported when read); folders
    are walked without following symlinked folders, so a link loop cannot hang ingest.
    ``missing="skip"`` passes over a path that does not exist (telling ``on_missing``), as a
    bad file is passed over, so one typo does not abort a run over many folders.
    """
    include = [_glob_regex(p) for p in cfg.include]
    exclude = [_glob_regex(p) for p in cfg.exclude]
    found: dict[Path, tuple[Path, str]] = {}
    for raw in cfg.paths:
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.exists():
            if missing == "skip":
                if on_missing is not None:
                    on_missing(path)
                continue
            raise InputError(
                "source path does not exist",
                where=str(path),
                hint="check sources.paths (relative paths are read from the config's folder)",
            )
        path = path.resolve()
        if path.is_file():
            found.setdefault(path, (path.parent, path.name))
            continue
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                rel = full.relative_to(path).as_posix()
                if _is_hidden(rel) or not _matches(rel, include) or _matches(rel, exclude):
                    continue
                found.setdefault(full.resolve(), (path.parent, f"{path.name}/{rel}"))
    names = source_names(found)
    return {p: names[p] for p in sorted(found)}


def source_names(found: dict[Path, tuple[Path, str]]) -> dict[Path, str]:
    """Names that do not depend on where the files sit on disk: a folder's files are
    ``<folder name>/<path inside it>``, a file named directly is its file name.

    Chunk ids, the train/held-out split and the LLM's prompts are built from these names,
    so a clone elsewhere or a moved project gives the same run. Two roots that would
    give one name (``a/docs`` and ``b/docs``) take as many parent folders as tell them apart.
    """
    depth = {anchor: 0 for anchor, _ in found.values()}

    def name(path: Path) -> str:
        anchor, rel = found[path]
        parts = anchor.parts[len(anchor.parts) - depth[anchor] :] if depth[anchor] else ()
        return "/".join([*(p.strip("/") for p in parts if p.strip("/")), rel])

    while True:
        by_name: dict[str, list[Path]] = {}
        for path in found:
            by_name.setdefault(name(path), []).append(path)
        deeper = {
            found[path][0]
            for paths in by_name.values()
            if len(paths) > 1
            for path in paths
            if depth[found[path][0]] < len(found[path][0].parts)
        }
        if not deeper:
            return {path: name(path) for path in found}
        for anchor in deeper:
            depth[anchor] += 1
