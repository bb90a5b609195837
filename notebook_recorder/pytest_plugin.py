"""The pytest plugin's entry point (``pytest11``: ``notebook_recorder``); ``-p no:notebook_recorder`` turns it off.

The plugin itself is :mod:`notebook_recorder.frontends.pytest_plugin`, which pytest loads from here.
"""

pytest_plugins = ["notebook_recorder.frontends.pytest_plugin"]
