"""The pytest plugin: record and replay a test's openai and tool calls, and run notebooks as tests.

Installed with the package (the ``pytest11`` entry point ``notebook_recorder``); ``-p
no:notebook_recorder`` turns it off.

>>> @pytest.mark.apirec
... def test_agent(apirec):            # the fixture is the active Recorder
...     client.chat.completions.create(...)

- ``--apirec-mode={live,record,replay,record-if-missing}``, ``replay`` by default: a run without
  options never reaches the network. ``APIREC_MODE`` overrides every mode, as everywhere.
- Recordings go to ``recordings/<test module stem>/`` beside the test file (the ini option
  ``apirec_dir`` moves the root), with the test's node id as ``test_id``.
- ``--apirec-notebooks PATH...`` collects every ``*.ipynb`` under the paths; each notebook is a
  test that runs in a real kernel and is checked like ``notebook-recorder run --check``.

This module is imported by every pytest session where the package is installed, so it imports
nothing heavy: the Recorder, the openai hook and nbclient load only when a test needs them.

The package's modules follow the plugin's seams: ``_options`` (options, ini settings, the marker,
the session's mode and its ``config.stash``), ``_recorder`` (the fixtures and each test's
recorder), ``_reports`` (a missing recording's report, the summary line) and ``_notebooks``
(notebooks as tests). pytest registers this module; the hooks and fixtures are its names.
"""

from __future__ import annotations

from ... import hooks  # noqa: F401  (imported, the hooks register themselves with the core)
from ._notebooks import NotebookFailure, NotebookFile, NotebookItem, pytest_collect_file, pytest_sessionstart
from ._options import (
    CONFIG_KEYS,
    MARKER,
    pytest_addoption,
    pytest_configure,
    pytest_unconfigure,
    session_mode,
)
from ._recorder import apirec, apirec_config, pytest_collection_modifyitems, scope_for
from ._reports import (
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)

__all__ = ["CONFIG_KEYS", "MARKER", "NotebookFailure", "NotebookFile", "NotebookItem", "scope_for", "session_mode"]

# The hooks and fixtures pytest finds here (by name), besides the public names above.
_PLUGIN = (
    apirec,
    apirec_config,
    pytest_addoption,
    pytest_collect_file,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
    pytest_testnodedown,
    pytest_unconfigure,
)
