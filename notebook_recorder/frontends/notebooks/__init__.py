"""Notebooks in a real kernel (``_runner``) and ``--check`` (``_comparison``, outputs against the stored ones).

May import ``frontends._render``/``_discovery`` and ``core``; the CLI and the pytest plugin use them.
"""
