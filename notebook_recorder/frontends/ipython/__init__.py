"""The IPython extension: ``%load_ext notebook_recorder`` and the ``%apirec`` magics (``magics``) with their helpers.

May import ``frontends._render``/``_discovery``, ``hooks`` and ``core``; not the CLI or the notebook runner.
"""
