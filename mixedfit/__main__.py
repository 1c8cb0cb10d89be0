"""``python -m mixedfit``: the ``mixedfit`` command."""

import sys

from .cli import main

sys.exit(main())
