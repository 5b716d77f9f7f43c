"""``python -m hubselect`` is the ``hubselect`` command."""

import sys

from hubselect.cli import main

sys.exit(main())
