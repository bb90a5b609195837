"""The test session keeps the library's user cache (``APIREC_CACHE_DIR``) in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notebook_recorder.core import _user_cache


def test_the_session_never_writes_to_the_users_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """tests/conftest.py sets APIREC_CACHE_DIR for the whole session, so no test (nor a process a
    test starts, which inherits it) writes a large folder's index to ``~/.cache``."""
    root = _user_cache.cache_root()
    assert root is not None and Path(os.environ["APIREC_CACHE_DIR"]) == root
    assert root.is_relative_to(tmp_path_factory.getbasetemp())
