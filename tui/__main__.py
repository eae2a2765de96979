"""``python -m ragtune.tui`` starts the wizard, like the ``ragtune`` script."""

import sys

from ragtune.tui.launch import main

sys.exit(main())
