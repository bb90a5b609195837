"""The ``notebook-recorder`` command's entry point (``[project.scripts]``, ``python -m notebook_recorder.cli``).

The command line itself lives in :mod:`notebook_recorder.frontends.cli`.
"""

import sys

from .frontends.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
