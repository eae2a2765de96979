"""Step 2: what the retriever learns from: files and folders, a dataset, or a written description."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import (
    Checkbox,
    DirectoryTree,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.tree import TreeNode
from textual.worker import Worker, WorkerState

from ragtune.tui.engine_client import DatasetPreview, ScanResult
from ragtune.tui.errors import friendly
from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.widgets.data_table import DataTable
from ragtune.tui.widgets.text_entry import Input, TextArea
from ragtune.tui.widgets.tickbox import TickBox

FILE_TYPES = {"pdf": ("pdf",), "docx": ("docx",), "md": ("md", "markdown"), "txt": ("txt",)}
TYPE_GLOBS = {t: [f"**/*.{s}" for s in suffixes] for t, suffixes in FILE_TYPES.items()}
FILES_ONLY = ("pick", "up", "browse")


def short_path(path: Path) -> str:
    """``~/docs`` rather than ``/home/me/docs``: the start of a long path is rarely the news."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def typed_path(text: str, base: Path) -> Path:
    """A typed or pasted path: quotes a file manager adds are dropped, ``~`` expanded, and a
    relative path read from ``base`` (the folder the wizard was started in)."""
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    path = Path(text).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def path_problem(path: Path, typed: str, base: Path) -> str | None:
    """Why a typed path cannot be picked, in words that say what to do instead."""
    from ragtune.engine.ingest.discovery import DATASET_BUILDERS, FILE_SUFFIXES

    if not path.exists():
        where = "" if typed.startswith(("/", "~")) else f" (relative to {base})"
        return f"no file or folder at {path}{where}: check the spelling, or browse with F6/F7"
    if path.is_file() and path.suffix.lower() not in FILE_SUFFIXES:
        if path.suffix.lower() in DATASET_BUILDERS:
            return f"{path.name} is a table: name it in the Dataset tab instead"
        kinds = ", ".join(sorted(FILE_SUFFIXES))
        return f"{path.name} is not a document ragtune reads ({kinds})"
    return None


class PickTree(DirectoryTree):
    """A directory tree showing only the chosen document types, with picked paths ticked.

    Its root shows the whole folder path, since F6 and F7 move it around the disk. Text typed
    or pasted on it goes to the field ``type_into`` names (the tree keeps its arrows, enter
    and space).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = DirectoryTree.COMPONENT_CLASSES | {"pick-tree--picked"}
    DEFAULT_CSS = """
    PickTree > .pick-tree--picked { color: $success; text-style: bold; }
    """

    def __init__(
        self, path: Path, picked: set[Path], types: set[str], *, type_into: str, **kw
    ) -> None:
        super().__init__(path, **kw)
        self.picked = picked
        self.types = types
        self.type_into = type_into

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character not in (None, " "):
            self.hand_over(event, events.Key(event.key, event.character))

    def on_paste(self, event: events.Paste) -> None:
        self.hand_over(event, events.Paste(event.text))

    def hand_over(self, event: events.Event, copy: events.Event) -> None:
        """The field gets the focus at once and the key or paste after it.

        A burst (a paste without bracketed paste, tmux send-keys) reaches the app in pieces:
        keys it routed to the tree before the focus moved arrive here after it moved, and
        are passed on, not dropped. ``Screen.set_focus`` moves the focus now (``focus()``
        waits for the app's queue), so keys the app routes to the field from then on queue
        behind the ones passed on here.
        """
        event.stop()
        event.prevent_default()
        field = self.screen.query_one(self.type_into, Input)
        self.screen.set_focus(field)
        field.post_message(copy)

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        suffixes = {f".{s}" for t in self.types for s in FILE_TYPES[t]}
        for path in paths:
            if path.name.startswith("."):
                continue
            if path.is_dir() or path.suffix.lower() in suffixes:
                yield path

    def render_label(self, node: TreeNode, base_style: Style, style: Style) -> Text:
        if node is self.root:
            icon = self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE
            label = Text.assemble((icon, base_style), (short_path(Path(self.path)), style))
        else:
            label = super().render_label(node, base_style, style)
        if node.data is not None and Path(node.data.path).resolve() in self.picked:
            return (
                Text("✓ ", style=self.get_component_rich_style("pick-tree--picked", partial=True))
                + label
            )
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


@dataclass
class ScanRow:
    shown: str
    reason: str | None = None


class SourcesScreen(WizardScreen):
    STEP = "sources"
    HEADING = "Sources: the documents your retriever will learn from"
    HELP = (
        "Files: F4 (or enter on a file) picks the highlighted file or folder; folders are read "
        "recursively with the ticked types. Documents elsewhere: type or paste a path in the "
        "path field (absolute, ~/..., or relative to where ragtune started) and press enter, "
        "or move the tree: F6 goes up a folder, F7 shows the typed folder (or the highlighted "
        "one). F5 scans what will be read; problems are listed first, and the highlighted "
        "row's full reason is shown below the table. Dataset: a Hub name or a local "
        "csv/json/jsonl/parquet, F5 previews it and lists its columns. Description: no "
        "documents, the LLM writes passages."
    )
    DEFAULT_CSS = """
    SourcesScreen TabbedContent { height: 1fr; }
    SourcesScreen #files-pane > Vertical { height: 1fr; }
    SourcesScreen #path-row { height: auto; }
    SourcesScreen #path-row Label { width: 6; padding-top: 1; color: $text-muted; }
    SourcesScreen #path-input { width: 1fr; }
    SourcesScreen #path-note { height: auto; padding-left: 6; display: none; }
    SourcesScreen #path-note.-shown { display: block; }
    SourcesScreen #files-main { height: 1fr; }
    SourcesScreen PickTree { width: 1fr; min-width: 28; }
    SourcesScreen #files-side { width: 1fr; }
    SourcesScreen #types { height: 1; }
    SourcesScreen #types Checkbox { border: none; padding: 0 1 0 0; height: 1; background: transparent; }
    SourcesScreen #picked { height: auto; max-height: 4; color: $text-muted; }
    SourcesScreen #scan-table, SourcesScreen #dataset-table { height: 1fr; }
    SourcesScreen #scan-detail { height: auto; max-height: 7; }
    SourcesScreen #sources-status { height: auto; }
    SourcesScreen .field-row { height: 1; }
    SourcesScreen .field-row Label { width: 16; }
    SourcesScreen .field-row Input, SourcesScreen .field-row Select { width: 1fr; }
    SourcesScreen #ds-status { height: auto; margin: 1 0; }
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
        Binding(
            "f6",
            "up",
            "Up",
            id="sources.up",
            tooltip="Show the folder above the tree's top folder",
        ),
        Binding(
            "f7",
            "browse",
            "Browse",
            id="sources.browse",
            tooltip="Show the typed folder in the tree (or the highlighted one)",
        ),
    ]

    AUTO_FOCUS = "#tree"

    def __init__(self) -> None:
        super().__init__()
        self.picked: set[Path] = set()
        self.types: set[str] = set(FILE_TYPES)
        self.last_scan: ScanResult | None = None
        self.scan_rows: list[ScanRow] = []
        self._dataset_started = 0.0
        self._dataset_timer: Timer | None = None
        self._dataset_worker: Worker | None = None

    def compose_body(self) -> ComposeResult:
        src = self.wizard.cfg.sources
        self.picked = {self.wizard.cfg.resolve(p) for p in src.paths}
        self.types = {t for t, globs in TYPE_GLOBS.items() if set(globs) & set(src.include)}
        with TabbedContent(id="source-tabs"):
            with TabPane("Files", id="files-pane"), Vertical():
                with Horizontal(id="path-row"):
                    yield Label("path")
                    yield Input(
                        placeholder="type or paste a file or folder, e.g. ~/docs; enter picks it",
                        id="path-input",
                        # text typed on the tree lands here: selecting it on focus would
                        # let the next key replace the first
                        select_on_focus=False,
                    )
                yield Static("", id="path-note")
                with Horizontal(id="files-main"):
                    yield PickTree(
                        self.wizard.browse_root,
                        self.picked,
                        self.types,
                        type_into="#path-input",
                        id="tree",
                    )
                    with Vertical(id="files-side"):
                        with Horizontal(id="types"):
                            for t in FILE_TYPES:
                                yield TickBox(
                                    t, value=t in self.types, id=f"type-{t}", compact=True
                                )
                        yield Static("", id="picked")
                        yield DataTable(id="scan-table", zebra_stripes=True, cursor_type="row")
                        yield Static("", id="scan-detail")
                yield Static("", id="sources-status", classes="hint")
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
                yield Static("F5 reads the first rows and lists the columns.", id="ds-status")
                yield DataTable(id="dataset-table", zebra_stripes=True)
            with TabPane("Description", id="description-pane"):
                yield Static(
                    "Describe the domain; used when there are no documents.", classes="hint"
                )
                yield TextArea(src.description, id="description")

    def on_mount(self) -> None:
        self.query_one("#scan-table", DataTable).add_columns("file", "status")
        self.show_picked()

    # -- files -----------------------------------------------------------

    def shown_path(self, path: Path) -> str:
        """Relative to the folder ragtune started in when inside it, else the whole path."""
        try:
            return str(path.relative_to(self.wizard.browse_root)) or "."
        except ValueError:
            return short_path(path)

    def show_picked(self) -> None:
        names = [self.shown_path(p) for p in sorted(self.picked)]
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

    def note(self, text: str, ok: bool) -> None:
        """The path field's answer, kept until the next one (a toast would be gone)."""
        note = self.query_one("#path-note", Static)
        note.update(Content.styled(text, "$success" if ok else "bold $error"))
        note.set_class(bool(text), "-shown")

    @on(Input.Submitted, "#path-input")
    def path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.pick_typed(event.value)

    def pick_typed(self, typed: str) -> None:
        if not typed.strip():
            self.note("type a file or folder path first", ok=False)
            return
        path = typed_path(typed, self.wizard.browse_root)
        problem = path_problem(path, typed.strip(), self.wizard.browse_root)
        if problem:
            self.note("✘ " + problem, ok=False)
            return
        if path in self.picked:
            self.note(f"✓ {short_path(path)} is already picked", ok=True)
            return
        self.picked.add(path)
        tree = self.query_one(PickTree)
        root = Path(tree.path).resolve()
        moved = ""
        if root not in path.parents:
            tree.path = path.parent
            moved = f"; the tree now shows {short_path(path.parent)}"
        tree.refresh_marks()
        self.show_picked()
        self.query_one("#path-input", Input).value = ""
        self.note(f"✓ picked {short_path(path)}{moved}", ok=True)

    def action_up(self) -> None:
        tree = self.query_one(PickTree)
        root = Path(tree.path).resolve()
        if root.parent == root:
            self.note(f"{root} is the top of the disk", ok=False)
            return
        tree.path = root.parent
        self.note(f"the tree shows {short_path(root.parent)}", ok=True)

    def action_browse(self) -> None:
        """Move the tree to the typed folder, or into the highlighted one."""
        tree = self.query_one(PickTree)
        typed = self.query_one("#path-input", Input).value
        if typed.strip():
            folder = typed_path(typed, self.wizard.browse_root)
            if not folder.exists():
                self.note(f"✘ no folder at {folder}: check the spelling", ok=False)
                return
        else:
            node = tree.cursor_node
            if node is None or node.data is None:
                return
            folder = Path(node.data.path).resolve()
        if not folder.is_dir():
            folder = folder.parent
        tree.path = folder
        self.query_one("#path-input", Input).value = ""
        tree.focus()
        self.note(f"the tree shows {short_path(folder)}", ok=True)

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
        """Picked paths and ticked types into the config; include globs the user wrote by
        hand (in config.toml) are kept."""
        src = self.wizard.cfg.sources
        src.paths = [str(p) for p in sorted(self.picked)]
        managed = {g for globs in TYPE_GLOBS.values() for g in globs}
        own = [g for g in src.include if g not in managed]
        src.include = own + [g for t in sorted(self.types) for g in TYPE_GLOBS[t]]

    def commit_state(self) -> None:
        self.commit()

    # -- dataset and description ----------------------------------------

    @on(Input.Changed, "#ds-dataset, #ds-dataset_config, #ds-dataset_split")
    def dataset_field_changed(self, event: Input.Changed) -> None:
        key = (event.input.id or "").removeprefix("ds-")
        setattr(self.wizard.cfg.sources, key, event.value.strip())

    @on(Select.Changed, "#ds-text-column")
    def text_column_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.wizard.cfg.sources.text_column = event.value

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.wizard.cfg.sources.description = event.text_area.text

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """F4, F6 and F7 act on the file tree: hidden on the other tabs."""
        if action in FILES_ONLY:
            try:
                return self.query_one(TabbedContent).active == "files-pane"
            except NoMatches:
                return True
        return True

    # -- scanning --------------------------------------------------------

    def action_scan(self) -> None:
        tabs = self.query_one(TabbedContent)
        status = self.query_one("#sources-status", Static)
        if tabs.active == "dataset-pane":
            self.start_dataset_preview()
        else:
            self.commit()
            if not self.picked:
                self.notify("pick a file or folder first (F4)", severity="warning")
                return
            status.update("scanning…")
            self.scan_worker()

    def start_dataset_preview(self) -> None:
        name = self.wizard.cfg.sources.dataset
        if not name:
            self.show_dataset_status(
                Content.styled("✘ type a dataset name or file first", "$error")
            )
            return
        self._dataset_started = monotonic()
        if self._dataset_timer is not None:
            self._dataset_timer.stop()
        self._dataset_timer = self.set_interval(1.0, self.tick_dataset)
        self.tick_dataset()
        self._dataset_worker = self.preview_worker()

    def tick_dataset(self) -> None:
        """Seconds waited, so a slow Hub download does not look like a hang."""
        seconds = int(monotonic() - self._dataset_started)
        name = self.wizard.cfg.sources.dataset
        self.show_dataset_status(
            f"reading {name!r}… {seconds} s (a Hub dataset is downloaded first; "
            "F5 again after changing the name)"
        )

    def stop_dataset_timer(self) -> None:
        if self._dataset_timer is not None:
            self._dataset_timer.stop()
            self._dataset_timer = None

    def show_dataset_status(self, text: str | Content) -> None:
        self.query_one("#ds-status", Static).update(text)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="sources",
        description="Scanning sources",
    )
    def scan_worker(self) -> ScanResult:
        return self.wizard.engine.discover(self.wizard.cfg)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="sources-dataset",
        description="Dataset preview",
    )
    def preview_worker(self) -> DatasetPreview:
        return self.wizard.engine.preview_dataset(self.wizard.cfg)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Values of finished workers only: a scan or preview superseded by F5 again is
        cancelled by ``exclusive`` and never arrives as a success; a preview that finished
        just before a newer F5 is not the newest one, and is dropped too."""
        worker = event.worker
        if event.state != WorkerState.SUCCESS:
            return
        if worker.group == "sources":
            self.last_scan = worker.result
            self.render_scan()
        elif worker.group == "sources-dataset" and worker is self._dataset_worker:
            self.render_dataset(worker.result)

    def render_scan(self) -> None:
        """Problems first, cells cut to fit the table; the highlighted row's full path and
        reason go below it, so both read at 80 columns too."""
        result = self.last_scan
        if result is None:
            return
        rows = [ScanRow(self.shown_path(Path(w).resolve()), why) for w, why in result.errors]
        rows += [ScanRow(self.shown_path(f.resolve())) for f in result.files]
        self.scan_rows = rows
        table = self.query_one("#scan-table", DataTable)
        room = max(table.size.width - table.styles.scrollbar_size_vertical - 4, 20)
        statuses = ["status"] + ["ok" if r.reason is None else "✘ " + r.reason for r in rows]
        names = ["file"] + [r.shown for r in rows]
        # The file name first; the status keeps enough to tell ok from a problem.
        status_w = min(max(map(len, statuses)), 14)
        file_w = min(max(map(len, names)), room - status_w)
        status_w = room - file_w
        table.clear(columns=True)
        table.add_column("file", width=file_w, key="file")
        table.add_column("status", width=status_w, key="status")
        for row in rows:
            shown = row.shown if len(row.shown) <= file_w else "…" + row.shown[-(file_w - 1) :]
            status = (
                Content.styled("ok", "$success")
                if row.reason is None
                else Content.styled("✘ " + row.reason, "$error")
            )
            table.add_row(shown, status)
        problems = len(result.errors)
        text = f"{len(result.files)} file(s) to read, {problems} problem(s)"
        if problems:
            text += ": listed first, the highlighted one's reason below the table"
        self.query_one("#sources-status", Static).update(text)
        self.show_scan_detail(0)

    def show_scan_detail(self, index: int) -> None:
        detail = self.query_one("#scan-detail", Static)
        if not 0 <= index < len(self.scan_rows):
            detail.update("")
            return
        row = self.scan_rows[index]
        if row.reason is None:
            detail.update(Content.styled(f"{row.shown}: ok", "$success"))
        else:
            detail.update(Content.styled(f"✘ {row.shown}: {row.reason}", "$error"))

    @on(DataTable.RowHighlighted, "#scan-table")
    def scan_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_scan_detail(event.cursor_row)

    def on_resize(self) -> None:
        if self.last_scan is not None:
            self.call_after_refresh(self.render_scan)

    def render_dataset(self, preview: DatasetPreview) -> None:
        self.stop_dataset_timer()
        columns, rows = preview.columns, preview.rows
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
        text = f"✔ {len(columns)} columns; showing {len(rows)} row(s)"
        if current not in columns:
            text += f"; no column {current!r}: choose the text column above"
        self.show_dataset_status(
            Content.styled(text, "$success" if current in columns else "$warning")
        )

    def worker_failed(self, worker: Worker) -> bool | None:
        if worker.group == "sources-dataset":
            if worker is not self._dataset_worker:
                return True  # an older preview, already replaced by a newer F5
            self.stop_dataset_timer()
            name = self.wizard.cfg.sources.dataset
            self.query_one("#dataset-table", DataTable).clear(columns=True)
            self.show_dataset_status(
                Content.styled(
                    f"✘ could not read {name!r}: {friendly(worker.error)}", "bold $error"
                )
            )
            return self.query_one(TabbedContent).active == "dataset-pane"
        self.query_one("#sources-status", Static).update(
            Content.styled(f"✘ scan failed: {friendly(worker.error)}", "$error")
        )
        return None

    def leave_problem(self) -> str | None:
        self.commit()
        src = self.wizard.cfg.sources
        if not (src.paths or src.dataset or src.description.strip()):
            return "pick files or folders (F4), name a dataset, or write a description"
        if self.last_scan is not None and not self.last_scan.files and not src.dataset:
            return "the picked paths hold no readable documents of the ticked types"
        return None
