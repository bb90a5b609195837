"""``python -m notebook_recorder``: the ``notebook-recorder`` command."""

import sys

from .frontends.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
