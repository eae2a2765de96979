"""`python -m engine`: the headless CLI, also how the TUI starts a detached run."""

from engine.cli import main

raise SystemExit(main())
