"""``python -m bertctr.cli``: the same as the ``bertctr`` command."""

import sys

from bertctr.cli.main import main

sys.exit(main())
