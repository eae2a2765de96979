"""Rows of a Hub or local dataset (CSV, JSON, JSONL, Parquet) as documents, with a text column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.engine.config import SourcesConfig
from ragtune.engine.core.errors import InputError, OfflineError, RagtuneError
from ragtune.engine.core.records import Document
from ragtune.engine.ingest.discovery import DATASET_BUILDERS
from ragtune.engine.ingest.readers import source_name


def _open_dataset(
    source: str, *, config: str = "", split: str = "train", base_dir: Path | None = None
) -> Any:
    """A streaming dataset, so neither a big local file nor a Hub dataset is loaded whole."""
    import datasets

    local = Path(source).expanduser()
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    looks_local = (
        local.exists()
        or local.suffix.lower() in DATASET_BUILDERS
        or source.startswith((".", "/", "~"))
    )
    try:
        if looks_local:
            if not local.exists():
                raise InputError(
                    "dataset file does not exist",
                    where=str(local),
                    hint="check sources.dataset (relative paths are read from the config's folder)",
                )
            if local.is_file() and not _has_content(local):
                raise InputError(
                    "the dataset file is empty: no columns and no rows",
                    where=str(local),
                    hint=(
                        "write a header line and one row per document"
                        if local.suffix.lower() in (".csv", ".tsv")
                        else "write one record per document"
                    )
                    + " (the text under the name set in sources.text_column), "
                    "or point sources.dataset at another file",
                )
            if local.is_dir() and (local / "dataset_info.json").exists():
                return datasets.load_from_disk(str(local)).to_iterable_dataset()
            if local.is_dir() and (local / "dataset_dict.json").exists():
                return datasets.load_from_disk(str(local))[split].to_iterable_dataset()
            if local.is_dir():
                return datasets.load_dataset(str(local), split=split, streaming=True)
            builder = DATASET_BUILDERS.get(local.suffix.lower())
            if builder is None:
                raise InputError(
                    f"unsupported dataset file type {local.suffix!r}",
                    where=str(local),
                    hint="use .csv, .tsv, .json, .jsonl or .parquet",
                )
            kwargs = {"delimiter": "\t"} if local.suffix.lower() == ".tsv" else {}
            return datasets.load_dataset(
                builder, data_files=str(local), split="train", streaming=True, **kwargs
            )
        _check_hub_dataset(source)
        return datasets.load_dataset(source, config or None, split=split, streaming=True)
    except RagtuneError:
        raise
    except ConnectionError as exc:
        raise OfflineError(
            f"the Hugging Face Hub is unreachable, so dataset {source!r} cannot be loaded "
            f"({str(exc).splitlines()[0]})",
            where="sources.dataset",
            hint="download it on a machine with access and point sources.dataset at the local "
            "file (.csv/.jsonl/.parquet), or set HF_HUB_OFFLINE=0 if the network is reachable",
        ) from None
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise InputError(
                f"dataset {source!r} has no split {split!r} ({exc})",
                where="sources.dataset_split",
                hint="pick one of the dataset's splits",
            ) from None
        raise InputError(
            f"cannot load dataset {source!r}: {exc}", where="sources.dataset"
        ) from None
    except Exception as exc:
        raise InputError(
            f"cannot load dataset {source!r} ({exc.__class__.__name__}: {exc})",
            where="sources.dataset",
            hint="check the name (and sources.dataset_config), or use a local file",
        ) from None


def _check_hub_dataset(name: str) -> None:
    """Fail at once when the Hub cannot be reached and the dataset is not cached: ``datasets``
    retries for 25-50 s before it says so."""
    from ragtune.engine.core.models import hub_reachable, is_cached

    if hub_reachable() or is_cached(name, kind="datasets"):
        return
    raise OfflineError(
        f"the Hugging Face Hub cannot be reached from here and dataset {name!r} is not in the "
        "local cache",
        where="sources.dataset",
        hint="download it on a machine with access (`hf download NAME --repo-type dataset "
        "--local-dir DIR`) and point sources.dataset at DIR or at a .csv/.jsonl/.parquet file",
    )


def _has_content(path: Path) -> bool:
    """False for a zero-byte or whitespace-only file, which the loaders report obscurely."""
    with path.open("rb") as f:
        return bool(f.read(4096).strip())


def _header(local: Path) -> list[str]:
    """The header line of a CSV/TSV, to name its columns when it has no rows to show them."""
    import csv

    if local.suffix.lower() not in (".csv", ".tsv") or not local.is_file():
        return []
    with local.open(encoding="utf-8", errors="replace", newline="") as f:
        row = next(csv.reader(f, delimiter="\t" if local.suffix.lower() == ".tsv" else ","), [])
    return [c.strip() for c in row if c.strip()]


def _no_rows(source: str, base_dir: Path | None) -> InputError:
    """A dataset that loads but has no rows: say so, rather than "no text column" with none listed."""
    local = Path(source).expanduser()
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    header = _header(local)
    what = f"only a header line ({', '.join(header)})" if header else "no columns"
    return InputError(
        f"dataset {source!r} has no rows: {what}",
        where=str(local) if local.exists() else "sources.dataset",
        hint="add one row per document under the header (the text in the column named by "
        "sources.text_column), or point sources.dataset at a file with rows",
    )


def _first_rows(ds: Any, n: int, source: str) -> list[dict]:
    try:
        return list(ds.take(n))
    except RagtuneError:
        raise
    except ConnectionError as exc:
        raise OfflineError(
            f"the Hugging Face Hub is unreachable while reading dataset {source!r}",
            where="sources.dataset",
            hint="use a local copy of the dataset (.csv/.jsonl/.parquet)",
        ) from exc
    except Exception as exc:
        raise InputError(
            f"cannot read rows of dataset {source!r} ({exc.__class__.__name__}: {exc})",
            where="sources.dataset",
        ) from None


def _columns(ds: Any, first: list[dict]) -> list[str]:
    names = getattr(ds, "column_names", None)
    if names:
        return list(names)
    return list(first[0]) if first else []


def preview_dataset(
    source: str,
    *,
    config: str = "",
    split: str = "train",
    n: int = 5,
    base_dir: Path | None = None,
) -> tuple[list[str], list[dict]]:
    """Columns and the first rows, so the TUI can let the user pick the text column."""
    ds = _open_dataset(source, config=config, split=split, base_dir=base_dir)
    rows = _first_rows(ds, n, source)
    columns = _columns(ds, rows)
    if not rows and not columns:
        raise _no_rows(source, base_dir)
    return columns, rows


def _check_column(kind: str, name: str, columns: list[str], source: str) -> None:
    if name and name not in columns:
        raise InputError(
            f"dataset {source!r} has no {kind} column {name!r}; available columns: "
            + ", ".join(columns),
            where=f"sources.{kind}_column",
            hint=f"set sources.{kind}_column to one of: {', '.join(columns)}",
        )


def load_dataset_rows(cfg: SourcesConfig, base_dir: Path) -> Iterator[Document]:
    """Rows of the configured dataset as documents; empty texts are skipped quietly."""
    ds = _open_dataset(
        cfg.dataset, config=cfg.dataset_config, split=cfg.dataset_split, base_dir=base_dir
    )
    first = _first_rows(ds, 1, cfg.dataset)
    if not first:
        raise _no_rows(cfg.dataset, base_dir)
    columns = _columns(ds, first)
    _check_column("text", cfg.text_column, columns, cfg.dataset)
    _check_column("id", cfg.id_column, columns, cfg.dataset)
    _check_column("title", cfg.title_column, columns, cfg.dataset)
    if cfg.max_rows:
        ds = ds.take(cfg.max_rows)
    name = cfg.dataset
    local = Path(name).expanduser()
    if not local.is_absolute():
        local = base_dir / local
    if local.exists():
        name = source_name(local)
    for index, row in enumerate(ds):
        text = row.get(cfg.text_column)
        if text is None:
            continue
        text = text if isinstance(text, str) else str(text)
        if not text.strip():
            continue
        row_id = str(row[cfg.id_column]) if cfg.id_column else str(index)
        title = str(row.get(cfg.title_column) or "") if cfg.title_column else ""
        yield Document(doc_id=f"{name}#{row_id}", text=text, source=name, title=title)
