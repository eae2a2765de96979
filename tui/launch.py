"""The ``ragtune`` console script: the wizard by default, the headless CLI for any subcommand.

Nothing heavy is imported here: colour settings must reach the environment
before Textual is imported, and the CLI path must not pay for Textual at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

COLOR_SYSTEMS = ("auto", "standard", "256", "truecolor", "windows", "none")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragtune tui",
        description="Terminal wizard: documents -> fine-tuned retriever and reranker. "
        "Other subcommands (run, eval, ask, status, init, export, generate ...) run headless.",
    )
    parser.add_argument("--workspace", "-w", help="open this run folder (resumes or re-attaches)")
    parser.add_argument("--theme", help="colour theme; remembered for next time")
    parser.add_argument("--inline", action="store_true", help="run below the prompt, no alt screen")
    parser.add_argument(
        "--no-color", action="store_true", help="monochrome output (same as NO_COLOR=1)"
    )
    parser.add_argument(
        "--color-system",
        choices=COLOR_SYSTEMS,
        help="override colour detection for terminals that misreport (e.g. 256 inside old tmux)",
    )
    return parser


def is_tui_invocation(argv: Sequence[str]) -> bool:
    return not argv or argv[0] == "tui" or argv[0].startswith("-")


def prepare_environment(args: argparse.Namespace) -> None:
    """Textual reads these at import / App() time, so they are set first."""
    from ragtune.engine.core.quiet import quiet_libraries

    quiet_libraries()
    if args.color_system:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = args.color_system
    if args.no_color:
        os.environ["NO_COLOR"] = "1"


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not is_tui_invocation(args_list):
        from ragtune.engine.cli import main as cli_main

        return int(cli_main(args_list) or 0)
    if args_list and args_list[0] == "tui":
        args_list = args_list[1:]
    args = build_parser().parse_args(args_list)
    prepare_environment(args)

    from ragtune.tui.app import RagtuneApp

    app = RagtuneApp(workspace=args.workspace, theme=args.theme)
    app.run(inline=args.inline)
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
