"""Step 2: what the retriever learns from: files and folders, a dataset, or a written description."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import (
    Checkbox,
    DataTable,
    DirectoryTree,
    Input,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)
from textual.widgets._tree import TreeNode

from tui.engine_client import ScanResult
from tui.messages import WorkResult
from tui.screens.base import WizardScreen
from tui.widgets.tickbox import TickBox

FILE_TYPES = {"pdf": ("pdf",), "docx": ("docx",), "md": ("md", "markdown"), "txt": ("txt",)}


class PickTree(DirectoryTree):
    """A directory tree showing only the chosen document types, with picked paths ticked."""

    def __init__(self, path: Path, picked: set[Path], types: set[str], **kw) -> None:
        super().__init__(path, **kw)
        self.picked = picked
        self.types = types

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        suffixes = {f".{s}" for t in self.types for s in FILE_TYPES[t]}
        for path in paths:
            if path.name.startswith("."):
                continue
            if path.is_dir() or path.suffix.lower() in suffixes:
                yield path

    def render_label(self, node: TreeNode, base_style, style) -> Text:
        label = super().render_label(node, base_style, style)
        if node.data is not None and Path(node.data.path).resolve() in self.picked:
            return Text("✓ ", style="bold green") + label
        return label

    def refresh_marks(self) -> None:
        """Repaint every loaded node now that the picked set changed.

        Tree caches each rendered line by the node's update count, so a plain
        ``refresh()`` repaints the cached label without the new mark; ``node.refresh()``
        bumps that count.
        """
        stack = [self.root]
        while stack:
            node = stack.pop()
            node.refresh()
            stack.extend(node.children)


class SourcesScreen(WizardScreen):
    STEP = "sources"
    HEADING = "Sources: the documents your retriever will learn from"
    HELP = (
        "Files: F4 (or enter on a file) picks the highlighted file or folder; folders are read "
        "recursively with the ticked types. Dataset: a Hub name or a local csv/json/jsonl/parquet, "
        "F5 previews it and lists its columns. Description: no documents, the LLM writes passages."
    )
    DEFAULT_CSS = """
    SourcesScreen TabbedContent { height: 1fr; }
    SourcesScreen #files-pane > Horizontal { height: 1fr; }
    SourcesScreen PickTree { width: 1fr; min-width: 28; }
    SourcesScreen #files-side { width: 1fr; }
    SourcesScreen #types { height: 1; }
    SourcesScreen #types Checkbox { border: none; padding: 0 1 0 0; height: 1; background: transparent; }
    SourcesScreen #picked { height: auto; max-height: 4; color: $text-muted; }
    SourcesScreen #scan-table, SourcesScreen #dataset-table { height: 1fr; }
    SourcesScreen .field-row { height: 1; }
    SourcesScreen .field-row Label { width: 16; }
    SourcesScreen .field-row Input, SourcesScreen .field-row Select { width: 1fr; }
    SourcesScreen #description { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f4", "pick", "Pick", id="sources.pick", tooltip="Add or remove the highlighted path"
        ),
        Binding(
            "f5",
            "scan",
            "Scan/preview",
            id="sources.scan",
            tooltip="Files: list what will be read; Dataset: preview rows and columns",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.picked: set[Path] = set()
        self.types: set[str] = set(FILE_TYPES)
        self.last_scan: ScanResult | None = None

    def compose_body(self) -> ComposeResult:
        src = self.wizard.cfg.sources
        self.picked = {self.wizard.cfg.resolve(p) for p in src.paths}
        with TabbedContent(id="source-tabs"):
            with TabPane("Files", id="files-pane"), Horizontal():
                yield PickTree(self.wizard.browse_root, self.picked, self.types, id="tree")
                with Vertical(id="files-side"):
                    with Horizontal(id="types"):
                        for t in FILE_TYPES:
                            yield TickBox(t, value=True, id=f"type-{t}", compact=True)
                    yield Static("", id="picked")
                    yield DataTable(id="scan-table", zebra_stripes=True)
            with TabPane("Dataset", id="dataset-pane"):
                for key, label in (
                    ("dataset", "name or file"),
                    ("dataset_config", "subset"),
                    ("dataset_split", "split"),
                ):
                    with Horizontal(classes="field-row"):
                        yield Label(label)
                        yield Input(getattr(src, key), id=f"ds-{key}", compact=True)
                with Horizontal(classes="field-row"):
                    yield Label("text column")
                    yield Select(
                        [], prompt="preview (F5) to list columns", id="ds-text-column", compact=True
                    )
                yield DataTable(id="dataset-table", zebra_stripes=True)
            with TabPane("Description", id="description-pane"):
                yield Static(
                    "Describe the domain; used when there are no documents.", classes="hint"
                )
                yield TextArea(src.description, id="description")
        yield Static("", id="sources-status", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one("#scan-table", DataTable)
        table.add_columns("file", "status")
        self.show_picked()

    # -- files -----------------------------------------------------------

    def show_picked(self) -> None:
        base = self.wizard.browse_root
        names = []
        for p in sorted(self.picked):
            try:
                names.append(str(p.relative_to(base)) or ".")
            except ValueError:
                names.append(str(p))
        text = "picked: " + (", ".join(names) if names else "nothing yet (F4 on a file or folder)")
        self.query_one("#picked", Static).update(text)
        self.commit()

    def toggle(self, path: Path) -> None:
        path = path.resolve()
        if path in self.picked:
            self.picked.remove(path)
        else:
            self.picked.add(path)
        self.query_one(PickTree).refresh_marks()
        self.show_picked()

    def action_pick(self) -> None:
        tree = self.query_one(PickTree)
        node = tree.cursor_node
        if node is None or node.data is None:
            return
        self.toggle(Path(node.data.path))

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.toggle(event.path)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        kind = (event.checkbox.id or "").removeprefix("type-")
        if kind in FILE_TYPES:
            (self.types.add if event.value else self.types.discard)(kind)
            if not self.types:
                self.notify("tick at least one file type", severity="warning")
            tree = self.query_one(PickTree)
            tree.reload()
            self.commit()

    def commit(self) -> None:
        src = self.wizard.cfg.sources
        src.paths = [str(p) for p in sorted(self.picked)]
        src.include = [f"**/*.{s}" for t in sorted(self.types) for s in FILE_TYPES[t]]

    # -- dataset and description ----------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        key = (event.input.id or "").removeprefix("ds-")
        if key in ("dataset", "dataset_config", "dataset_split"):
            setattr(self.wizard.cfg.sources, key, event.value.strip())

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "ds-text-column" and isinstance(event.value, str):
            self.wizard.cfg.sources.text_column = event.value

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.wizard.cfg.sources.description = event.text_area.text

    # -- scanning --------------------------------------------------------

    def action_scan(self) -> None:
        tabs = self.query_one(TabbedContent)
        status = self.query_one("#sources-status", Static)
        if tabs.active == "dataset-pane":
            if not self.wizard.cfg.sources.dataset:
                self.notify("type a dataset name or file first", severity="warning")
                return
            status.update("reading the dataset…")
            self.preview_worker()
        else:
            self.commit()
            if not self.picked:
                self.notify("pick a file or folder first (F4)", severity="warning")
                return
            status.update("scanning…")
            self.scan_worker()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="sources",
        description="Scanning sources",
    )
    def scan_worker(self) -> None:
        result = self.wizard.engine.discover(self.wizard.cfg)
        self.post_message(WorkResult("scan", result))

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="sources",
        description="Dataset preview",
    )
    def preview_worker(self) -> None:
        result = self.wizard.engine.preview_dataset(self.wizard.cfg)
        self.post_message(WorkResult("dataset", result))

    def on_work_result(self, message: WorkResult) -> None:
        status = self.query_one("#sources-status", Static)
        if message.kind == "scan":
            result: ScanResult = message.value
            self.last_scan = result
            table = self.query_one("#scan-table", DataTable)
            table.clear()
            base = self.wizard.browse_root
            for f in result.files:
                try:
                    shown = str(f.resolve().relative_to(base))
                except ValueError:
                    shown = str(f)
                table.add_row(shown, Text("ok", style="green"))
            for where, why in result.errors:
                table.add_row(Path(where).name or where, Text(why, style="red"))
            status.update(f"{len(result.files)} file(s) to read, {len(result.errors)} problem(s)")
        elif message.kind == "dataset":
            columns, rows = message.value.columns, message.value.rows
            select = self.query_one("#ds-text-column", Select)
            select.set_options([(c, c) for c in columns])
            current = self.wizard.cfg.sources.text_column
            if current in columns:
                select.value = current
            table = self.query_one("#dataset-table", DataTable)
            table.clear(columns=True)
            table.add_columns(*columns)
            for row in rows:
                table.add_row(*[str(row.get(c, ""))[:60] for c in columns])
            status.update(f"{len(columns)} columns; showing {len(rows)} row(s)")

    def worker_failed(self, worker) -> None:
        self.query_one("#sources-status", Static).update("")

    def leave_problem(self) -> str | None:
        self.commit()
        src = self.wizard.cfg.sources
        if not (src.paths or src.dataset or src.description.strip()):
            return "pick files or folders (F4), name a dataset, or write a description"
        if self.last_scan is not None and not self.last_scan.files and not src.dataset:
            return "the picked paths hold no readable documents of the ticked types"
        return None
