"""``python -m notebook_recorder``: the ``notebook-recorder`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
