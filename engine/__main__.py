"""`python -m ragtune.engine`: the headless CLI, also how the TUI starts a detached run."""

from ragtune.engine.cli import main

raise SystemExit(main())
