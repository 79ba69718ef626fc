"""``python -m kqueue`` runs the ``kqueue`` command."""

import sys

from kqueue.cli import main

sys.exit(main())
