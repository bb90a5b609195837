"""The front ends: IPython magics (``ipython/``), the command line (``cli/``), notebooks (``notebooks/``), pytest.

May import ``hooks``, ``core`` and ``analysis``; ``_render`` and ``_discovery`` are shared by the front ends.
"""
