"""Where the text comes from: files and folders, a dataset, or only a description."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting

# The file types a reader in ``ragtune.engine.ingest.readers.READERS`` takes (a test ties the two).
DOCUMENT_SUFFIXES = (".pdf", ".docx", ".md", ".markdown", ".txt")
DEFAULT_INCLUDE = [f"**/*{suffix}" for suffix in DOCUMENT_SUFFIXES]


@dataclass
class SourcesConfig(Section):
    paths: list[str] = setting(
        default_factory=list,
        help="files or folders of .pdf/.docx/.md/.txt; relative paths are read from the config's folder",
    )
    include: list[str] = setting(
        default_factory=lambda: list(DEFAULT_INCLUDE), help="glob patterns kept inside folders"
    )
    exclude: list[str] = setting(default_factory=list, help="glob patterns skipped inside folders")
    dataset: str = setting("", help="Hub dataset name or a local .csv/.json/.jsonl/.parquet file")
    dataset_config: str = setting("", help="Hub dataset configuration (subset) name")
    dataset_split: str = setting("train", help="split to read from the dataset")
    text_column: str = setting("text", help="dataset column holding the passage text")
    id_column: str = setting("", help="optional dataset column with a stable document id")
    title_column: str = setting("", help="optional dataset column with a title")
    max_rows: int = setting(0, help="read at most this many dataset rows (0 = all)", minimum=0)
    description: str = setting(
        "", help="a written description of the domain, for runs that start with no documents"
    )

    @property
    def has_documents(self) -> bool:
        return bool(self.paths or self.dataset)
