"""The ``notebook-recorder`` command: arguments (``main``), the recordings commands, run/prune, scan and verify.

May import ``frontends.notebooks``, ``frontends._render``, ``analysis``, ``hooks`` and ``core``; not the magics.
"""
