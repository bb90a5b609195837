"""The recording core: modes, keys, match rules, codec, types, secrets, files, store, recorder, engine, session.

Imports only itself (and outside packages), never ``hooks``, ``frontends``, ``analysis``: hooks register in ``_hooks``.
"""
