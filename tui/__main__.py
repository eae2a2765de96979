"""``python -m tui`` starts the wizard, like the ``ragtune`` script."""

import sys

from tui.launch import main

sys.exit(main())
