"""Project configuration: the ``[tool.notebook-recorder]`` table of the nearest ``pyproject.toml``.

::

    [tool.notebook-recorder]
    dir = "recordings"                          # default recordings directory, relative to this file
    ignore = ["body.metadata.run_id", "body.user"]
    ignore_hosts = ["localhost:6333"]            # HTTP requests to these hosts are not recorded
    http_max_body = 10485760                    # bytes: a larger HTTP response is reported, not recorded
    [tool.notebook-recorder.normalize]
    '\\d{4}-\\d{2}-\\d{2}' = "<date>"

The nearest ``pyproject.toml`` is looked for from a directory upwards (the working directory of
the recorder: a notebook's kernel starts in the notebook's directory). Every
:class:`~notebook_recorder.core._recorder.Recorder` reads it, so the magics, ``nr.recording``,
``notebook-recorder run`` (whose kernel does the same) and the pytest plugin all honour it.
Explicit ``ignore=``/``normalize=`` arguments add to these rules; for a pattern in both, the
explicit replacement wins. Parsed files are cached by path and modification time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._match import STRICT, Rules

TABLE = "notebook-recorder"
KEYS = ("dir", "ignore", "normalize", "ignore_hosts", "http_max_body")


@dataclass(frozen=True)
class ProjectConfig:
    """What a project's ``pyproject.toml`` says; empty when there is no table (or no file)."""

    path: Path | None = None  # the pyproject.toml read, None when none was found
    rules: Rules = STRICT
    dir: Path | None = None  # absolute: relative paths are relative to the pyproject.toml
    ignore_hosts: tuple[str, ...] = ()  # hosts the HTTP-level hooks leave alone
    http_max_body: int | None = None  # bytes: a larger HTTP response body is reported, not recorded

    def __bool__(self) -> bool:
        return bool(self.rules) or self.dir is not None or bool(self.ignore_hosts) or self.http_max_body is not None


EMPTY = ProjectConfig()

_cache: dict[Path, tuple[int, ProjectConfig]] = {}
_lock = threading.Lock()


def find_pyproject(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` in ``start`` (default: the working directory) or above it."""
    here = Path(start if start is not None else os.getcwd()).expanduser().absolute()
    if here.is_file():
        here = here.parent
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def project_config(start: str | os.PathLike[str] | None = None) -> ProjectConfig:
    """The ``[tool.notebook-recorder]`` table of the nearest ``pyproject.toml`` above ``start``.

    Raises ``ValueError`` naming the file when the table is malformed (an unknown key, a bad
    path, an invalid regular expression).
    """
    path = find_pyproject(start)
    if path is None:
        return EMPTY
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return EMPTY
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    config = _read(path)
    with _lock:
        _cache[path] = (mtime, config)
    return config


def _read(path: Path) -> ProjectConfig:
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as TOML ({exc})") from None
    tool = data.get("tool")
    table = tool.get(TABLE) if isinstance(tool, Mapping) else None
    if table is None:
        return ProjectConfig(path=path)
    where = f"{path} [tool.{TABLE}]"
    if not isinstance(table, Mapping):
        raise ValueError(f"{where} must be a table with the keys {', '.join(KEYS)}")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(KEYS)}")
    ignore: Any = table.get("ignore", [])
    if isinstance(ignore, str):
        ignore = [ignore]
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise ValueError(f'{where}: ignore must be a list of paths such as "body.metadata.run_id", not {ignore!r}')
    normalize: Any = table.get("normalize", {})
    if not isinstance(normalize, Mapping):
        raise ValueError(f"{where}: normalize must be a table of 'PATTERN' = \"REPLACEMENT\", not {normalize!r}")
    directory: Any = table.get("dir")
    if directory is not None and (not isinstance(directory, str) or not directory.strip()):
        raise ValueError(f"{where}: dir must be a directory path (a string), not {directory!r}")
    hosts: Any = table.get("ignore_hosts", [])
    if isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise ValueError(f'{where}: ignore_hosts must be a list of host names such as "localhost", not {hosts!r}')
    max_body: Any = table.get("http_max_body")
    if max_body is not None and (type(max_body) is not int or max_body < 0):
        raise ValueError(f"{where}: http_max_body must be a number of bytes (an integer >= 0), not {max_body!r}")
    try:
        rules = Rules.build(ignore, dict(normalize))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    resolved = (path.parent / Path(directory).expanduser()) if directory else None
    return ProjectConfig(path=path, rules=rules, dir=resolved, ignore_hosts=tuple(hosts), http_max_body=max_body)


def clear_cache() -> None:
    """Forget every parsed ``pyproject.toml`` (tests use this)."""
    with _lock:
        _cache.clear()
