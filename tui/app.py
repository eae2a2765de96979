"""The wizard application: run state, step navigation, themes and global key bindings.

All run state lives in ``self.state`` (a ``WizardState``); screens read and
replace sections of ``state.cfg``. The engine is reached only through
``self.engine`` (an ``EngineClient``), from workers.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import AwaitMount

from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.workspace import Workspace
from ragtune.themes import BUNDLED_DIR
from ragtune.tui.commands import WizardCommands
from ragtune.tui.engine_client import EngineClient, WizardEngine
from ragtune.tui.screens.chunking import ChunkingScreen
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.screens.export import ExportScreen
from ragtune.tui.screens.help import HelpScreen
from ragtune.tui.screens.llm import LlmScreen
from ragtune.tui.screens.results import ResultsScreen
from ragtune.tui.screens.samples import SamplesScreen
from ragtune.tui.screens.sources import SourcesScreen
from ragtune.tui.screens.start import StartScreen
from ragtune.tui.screens.training import TrainingScreen
from ragtune.tui.screens.training_settings import TrainingSettingsScreen
from ragtune.tui.settings import UserSettings
from ragtune.tui.state import WizardState
from ragtune.tui.widgets.step_bar import STEP_NAMES


class RagtuneApp(App[int]):
    TITLE = "ragtune"
    CSS_PATH = BUNDLED_DIR / "wizard.tcss"
    MODES: ClassVar[dict[str, type[Screen]]] = {
        "start": StartScreen,
        "sources": SourcesScreen,
        "chunking": ChunkingScreen,
        "llm": LlmScreen,
        "samples": SamplesScreen,
        "settings": TrainingSettingsScreen,
        "training": TrainingScreen,
        "results": ResultsScreen,
        "export": ExportScreen,
    }
    DEFAULT_MODE = "start"
    COMMANDS = App.COMMANDS | {WizardCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        # Tab is handled here, before the key reaches the focused field: as a screen binding
        # it bubbled up after the field, so text typed fast after a Tab (a paste, tmux
        # send-keys) landed in the field being left.
        Binding(
            "tab",
            "focus_next",
            "Next field",
            id="app.focus_next",
            tooltip="Move to the next field",
            show=False,
            priority=True,
        ),
        Binding(
            "shift+tab",
            "focus_previous",
            "Previous field",
            id="app.focus_previous",
            tooltip="Move to the previous field",
            show=False,
            priority=True,
        ),
        Binding("f1", "help", "Help", id="app.help", tooltip="Keys and tips for this step"),
        Binding("f2", "back", "Back", id="app.back", tooltip="Previous step"),
        Binding("f3", "next", "Next", id="app.next", tooltip="Next step (checks this one first)"),
        # Save and Quit stay off the footer so each step's own keys fit at 80 columns;
        # F1 help and the command palette (ctrl+p) list them with every other binding.
        Binding(
            "ctrl+s",
            "save_config",
            "Save",
            id="app.save",
            tooltip="Write the run's config.toml now (it is also saved on every step change "
            "and on quit)",
            show=False,
        ),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="app.quit",
            tooltip="Quit. Your choices (sources, chunking, LLM and training settings) are kept "
            "in the run's config.toml, sample reviews in review.json; a typed API key is not "
            "kept. A training run continues.",
            show=False,
        ),
    ]

    def __init__(
        self,
        *,
        workspace: str | Path | None = None,
        theme: str | None = None,
        engine: WizardEngine | None = None,
        runs_dir: str | Path | None = None,
        browse_root: str | Path | None = None,
        remember_theme: bool = True,
    ) -> None:
        super().__init__()
        self.engine = engine if engine is not None else EngineClient()
        self.user_settings = UserSettings.load()
        self.requested_theme = theme
        self.remember_theme = remember_theme
        self.theme_names: list[str] = []
        self.runs_dir = Path(runs_dir) if runs_dir else Path.cwd() / "runs"
        self.browse_root = (Path(browse_root) if browse_root else Path.cwd()).resolve()
        self.state = WizardState()
        if self.user_settings.keymap:
            self.set_keymap(self.user_settings.keymap)
        if workspace is not None:
            self.open_workspace(Path(workspace))

    # -- run state -------------------------------------------------------

    @property
    def cfg(self) -> RunConfig:
        """The current run's config (``state.cfg``); replaced only with the whole state."""
        return self.state.cfg

    @property
    def workspace(self) -> Workspace | None:
        return self.state.workspace

    def open_workspace(self, root: Path) -> None:
        """Load the run's config.toml, or start a new config that writes into ``root``."""
        self.state = WizardState.open(root)
        self.reset_screens()

    def new_run(self, name: str) -> None:
        """A clean state and fresh screens: nothing of the previous run carries over."""
        self.state = WizardState.new_run(name, self.runs_dir / name)
        self.reset_screens()
        for note in self.state.notes:
            self.notify(f"no model Hub here: {note}", title="offline defaults", severity="warning")

    def reset_screens(self) -> None:
        """Drop every step's screen but the current one; the next visit builds it anew.

        Mode screens live as long as the app, so their widgets (picked files, the
        training history, a typed key) would otherwise show the previous run.
        """
        for mode, screen_type in self.MODES.items():
            if mode != self.current_mode and mode in self._screen_stacks:
                self.remove_mode(mode)
                self.add_mode(mode, screen_type)

    def ensure_workspace(self) -> Workspace:
        return self.state.ensure_workspace()

    def save_config(self) -> Path:
        """Write a config that replays from inside the workspace: absolute paths, workspace '.'.

        The API key is not part of the config (``state.api_key``), so it is never written.
        """
        ws = self.ensure_workspace()
        self.cfg.for_workspace(ws.root).save(ws.config_path)
        return ws.config_path

    def autosave(self) -> str | None:
        """Save the run's choices as the user goes; returns why it could not, else None.

        Quitting before training used to lose every choice. Nothing is written before a run
        has a workspace (new or opened), while a run works in it (the pipeline writes
        config.toml itself and holds the workspace), or when the file already says the same
        (a hand-edited config keeps its comments).
        """
        ws = self.state.workspace
        if ws is None or ws.root != self.cfg.workspace_dir:
            return None
        if self.state.run_in_progress() is not None:
            return None
        wanted = self.cfg.for_workspace(ws.root)
        try:
            if ws.config_path.exists():
                on_disk = load_config(ws.config_path).for_workspace(ws.root)
                if on_disk.to_dict() == wanted.to_dict():
                    return None
        except (RagtuneError, OSError):
            pass  # unreadable: the wizard's copy replaces it, or saying why it cannot
        try:
            wanted.save(ws.config_path)
        except OSError as exc:
            return f"{ws.config_path}: {exc.strerror or exc}"
        return None

    def commit_screen(self) -> None:
        """Let the current step put what was just typed into the config (see
        ``WizardScreen.commit_state``); the base screen of the mode, under any dialog."""
        stack = self.screen_stack
        commit = getattr(stack[0], "commit_state", None) if stack else None
        if commit is not None:
            with suppress(NoMatches):  # a step left before its fields were built has none
                commit()

    def screen_problems(self) -> str | None:
        """What still stops a full run from starting, checked before F5 on the Training step."""
        src = self.cfg.sources
        if not (src.has_documents or src.description.strip()):
            return "no sources yet: pick documents, a dataset or a description in step 2"
        gen = self.cfg.generation
        if gen.calls_llm and not gen.llm.model:
            return "generator litellm needs llm model (step 4), or choose llm-free"
        return None

    # -- themes ----------------------------------------------------------

    def on_mount(self) -> None:
        from ragtune.themes import DEFAULT_THEME, load_themes

        loaded = load_themes(self.user_settings.themes_dir)
        for theme in loaded.themes:
            self.register_theme(theme)
        self.theme_names = loaded.names
        for problem in loaded.errors:
            self.notify(problem, title="theme skipped", severity="warning", timeout=8)
        wanted = self.requested_theme or self.user_settings.theme or DEFAULT_THEME
        if wanted not in self.theme_names and wanted not in self.theme_names_all():
            self.notify(
                f"unknown theme {wanted!r}; using {DEFAULT_THEME}. "
                f"Available: {', '.join(self.theme_names)}",
                severity="warning",
                timeout=8,
            )
            wanted = DEFAULT_THEME
        self.theme = wanted
        if self.requested_theme and self.remember_theme:
            self._remember_theme(wanted)

    def theme_names_all(self) -> set[str]:
        return set(self._registered_themes)

    def choose_theme(self, name: str) -> None:
        self.theme = name
        self._remember_theme(name)

    def _remember_theme(self, name: str) -> None:
        if self.remember_theme:
            self.user_settings.theme = name
            self.user_settings.save()

    # -- navigation ------------------------------------------------------

    @property
    def step(self) -> str:
        return self.current_mode

    def goto(self, step: str) -> None:
        if step in self.MODES:
            self.switch_mode(step)

    def switch_mode(self, mode: str) -> AwaitMount:
        """Every step change saves the run's config.toml (see ``autosave``)."""
        if mode != self.current_mode and self.is_running:
            self.commit_screen()
            problem = self.autosave()
            if problem:
                self.notify(problem, title="config.toml not saved", severity="warning", timeout=8)
        return super().switch_mode(mode)

    def _step_offset(self, delta: int) -> str | None:
        try:
            i = STEP_NAMES.index(self.current_mode)
        except ValueError:
            return None
        j = i + delta
        return STEP_NAMES[j] if 0 <= j < len(STEP_NAMES) else None

    def action_next(self) -> None:
        problem = getattr(self.screen, "leave_problem", lambda: None)()
        if problem:
            self.notify(problem, title="not yet", severity="warning")
            return
        target = self._step_offset(1)
        if target:
            self.switch_mode(target)
        else:
            self.notify(
                "this is the last step: F2 goes back, ctrl+q quits (the run is kept)",
                title="no next step",
            )

    def action_back(self) -> None:
        target = self._step_offset(-1)
        if target:
            self.switch_mode(target)
        else:
            self.notify(
                "this is the first step: create a run (F5) or open one (F6) to go on",
                title="no step before",
            )

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_save_config(self) -> None:
        self.commit_screen()
        if self.state.workspace is None and self.current_mode == "start":
            self.notify(
                "no run yet, so nothing to save: create one (F5) or open one (F6) first",
                title="config not saved",
                severity="warning",
            )
            return
        pid = self.state.run_in_progress()
        if pid is not None:
            who = f" (pid {pid})" if pid > 0 else ""
            self.notify(
                f"a run{who} is working in this workspace and wrote its config.toml when it "
                "started; your changes stay in the wizard and are saved once it ends",
                title="config not saved",
                severity="warning",
                timeout=8,
            )
            return
        try:
            path = self.save_config()
        except (RagtuneError, OSError) as exc:
            self.notify(str(exc), title="config not saved", severity="error")
            return
        self.notify(f"saved {path}; replay with: ragtune run {path}", title="config saved")

    async def action_quit(self) -> None:
        """Save the run's choices, then quit; if they cannot be saved, ask first."""
        self.commit_screen()
        problem = self.autosave()
        if problem is None:
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmDialog(
                f"config.toml could not be saved ({problem}), so this run's choices would be "
                "lost. Quit anyway?",
                yes="Quit",
                no="Stay",
            ),
            answer,
        )
