"""The HTTP-library hooks (httpx, requests, aiohttp, ...): one module per library, none yet.

May import ``notebook_recorder.core`` and the hooks' shared modules; never a front end. Each module
patches one library and registers its ``install``/``uninstall`` with ``core._hooks`` (see
``notebook_recorder/hooks/__init__.py``, which registers the SDK hooks and the network guard).
"""
