"""The manifest of an exported dataset: ``OUT/_manifest.sqlite``, read and updated on disk.

One row per exported file (path, size, modification time, batch), in an SQLite database (the
standard library's), so that an export compares the files it finds with the manifest and updates
only the rows that changed, without holding either in memory: the walk's paths and stats go into
a temporary table in chunks, and the files to read, to remove and to keep come from joins.
Memory stays that of SQLite's page cache (a few MB), whatever the corpus size.

Crash safety comes from the order of the commits (an export killed at any point, or stopped by a
full disk, leaves a manifest that the next export can trust):

1. :meth:`Manifest.begin` marks the dataset ``dirty`` and every file whose rows are about to be
   removed as "read again" (``mtime_ns = -1``), in one transaction, before any part is touched.
2. Rows are removed from the parts; then those files leave the manifest.
3. Each batch of new rows is committed once all its parts are written: an export that stops
   keeps the batches it finished.
4. :meth:`Manifest.finish` clears ``dirty`` once ``tool_calls`` and its index are up to date.

An export that finds the dataset ``dirty`` deletes the parts of batches the manifest does not
know (those of a batch that was being written) and rebuilds ``tool_calls`` from the raw parts.

A manifest that is not one (an older ``_manifest.json``, a damaged or hostile file, another
schema or version) is never trusted: :meth:`Manifest.open` returns None and the dataset is
rebuilt whole.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..core._terminal import encodable
from ._layout import _FORMAT, APPLICATION_ID, MANIFEST, SCHEMA_VERSION

MANIFEST_VERSION = 1
#: Rows per page when batches are formed from the files to read.
CHUNK = 5000

_TABLES = {  # name -> the exact statement that made it (a manifest with anything else is rebuilt)
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "files": (
        "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
        "batch INTEGER NOT NULL) WITHOUT ROWID"
    ),
    "files_batch": "CREATE INDEX files_batch ON files (batch)",
}
# a file found (w) and its manifest row (f): read again (-1 is "read again next time", or a file
# that could not be stat'ed), or changed
_CHANGED = "(f.mtime_ns = -1 OR w.mtime_ns = -1 OR f.size != w.size OR f.mtime_ns != w.mtime_ns)"
_META = {"format": _FORMAT, "schema_version": SCHEMA_VERSION, "manifest_version": MANIFEST_VERSION}


class Manifest:
    """An open manifest; the walk of the current export in a temporary table beside it."""

    def __init__(self, con: sqlite3.Connection, dirty: bool) -> None:
        self.con = con
        self.dirty = dirty  # the last export did not finish

    # --- opening ---

    @staticmethod
    def path(out: Path) -> Path:
        return out / MANIFEST

    @classmethod
    def open(cls, out: Path) -> Manifest | None:
        """The manifest of the dataset at ``out``, or None when there is none this version wrote
        and can trust (missing, older, damaged, hostile)."""
        path = cls.path(out)
        if path.is_symlink() or not path.is_file():
            return None
        try:
            con = _connect(path)
        except sqlite3.DatabaseError:
            return None
        try:
            dirty = _check(con)
        except sqlite3.DatabaseError:
            dirty = None
        if dirty is None:
            con.close()
            return None
        return cls(con, dirty)

    @classmethod
    def create(cls, out: Path) -> Manifest:
        """A new, empty manifest (any file there is removed first), marked ``dirty`` until the
        export that creates it finishes."""
        remove(out)
        con = _connect(cls.path(out))
        con.execute("BEGIN IMMEDIATE")
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for sql in _TABLES.values():
            con.execute(sql)
        con.executemany("INSERT INTO meta VALUES (?, ?)", [*_META.items(), ("dirty", 1)])
        con.execute("COMMIT")
        return cls(con, True)

    def close(self) -> None:
        self.con.close()

    # --- this export's files ---

    def load_walk(self, entries: Iterable[tuple[str, int, int, int, str | None]]) -> None:
        """Fill the temporary table ``walk`` with the files found: (path, size, mtime_ns, seq,
        problem), ``seq`` their order; a path seen twice keeps its first place.

        A path is known by the name its rows carry (:func:`row_path`); a name that is not valid
        UTF-8 keeps its bytes beside it (``raw``), which are what is read."""
        con = self.con
        con.execute("DROP TABLE IF EXISTS temp.walk")
        con.execute(
            "CREATE TEMP TABLE walk (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, seq INTEGER, problem TEXT,"
            " raw BLOB) WITHOUT ROWID"
        )
        con.execute("BEGIN")
        con.executemany("INSERT OR IGNORE INTO walk VALUES (?, ?, ?, ?, ?, ?)", map(_walk_row, entries))
        # todo: what to read (new, changed, or read again), in walk order; stale: the manifest's
        # files whose rows go (changed, read again, or deleted)
        con.execute("DROP TABLE IF EXISTS temp.todo")
        con.execute("DROP TABLE IF EXISTS temp.stale")
        con.execute(
            "CREATE TEMP TABLE todo AS SELECT w.seq AS seq, w.path AS path, w.size AS size, w.problem AS problem, "
            "w.raw AS raw "
            f"FROM walk w LEFT JOIN files f ON f.path = w.path WHERE f.path IS NULL OR {_CHANGED} ORDER BY w.seq"
        )
        con.execute(
            "CREATE TEMP TABLE stale AS SELECT f.path AS path, f.batch AS batch "
            f"FROM files f LEFT JOIN walk w ON w.path = f.path WHERE w.path IS NULL OR {_CHANGED}"
        )
        con.execute("CREATE INDEX temp.stale_batch ON stale (batch)")
        con.execute("COMMIT")

    def counts(self) -> tuple[int, int, int]:
        """(files to read, files whose rows go, bytes to read)."""
        con = self.con
        (todo, size) = con.execute("SELECT count(*), coalesce(sum(max(size, 0)), 0) FROM todo").fetchone()
        (stale,) = con.execute("SELECT count(*) FROM stale").fetchone()
        return todo, stale, size

    def todo(self) -> Iterator[tuple[str, int, str | None]]:
        """The files to read, in walk order: (path, size, problem); read by pages, so that the
        manifest can be written between them."""
        last = -1
        while True:
            rows = self.con.execute(
                "SELECT rowid, path, size, problem, raw FROM todo WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, CHUNK)
            ).fetchall()
            if not rows:
                return
            for _, path, size, problem, raw in rows:
                yield (path if raw is None else os.fsdecode(raw)), size, problem
            last = rows[-1][0]

    def order_of(self, paths: Iterable[str]) -> dict[str, int]:
        """The walk order of ``paths`` (those found by this export)."""
        out: dict[str, int] = {}
        todo = list(paths)
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.con.execute(f"SELECT path, seq FROM walk WHERE path IN ({marks})", chunk).fetchall())
        return out

    # --- updating ---

    def begin(self) -> None:
        """Mark the dataset dirty and the stale files as "read again", before any part changes."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE meta SET value = 1 WHERE key = 'dirty'")
        con.execute("UPDATE files SET mtime_ns = -1 WHERE path IN (SELECT path FROM stale) AND mtime_ns != -1")
        con.execute("COMMIT")

    def stale_by_batch(self) -> Iterator[tuple[int, list[str]]]:
        """The files whose rows go, by the batch that holds them."""
        batches = [b for (b,) in self.con.execute("SELECT DISTINCT batch FROM stale ORDER BY batch").fetchall()]
        for batch in batches:
            paths = [p for (p,) in self.con.execute("SELECT path FROM stale WHERE batch = ?", (batch,)).fetchall()]
            yield batch, paths

    def drop_stale(self) -> None:
        """The stale files' rows are gone from the parts: they leave the manifest."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM files WHERE path IN (SELECT path FROM stale)")
        con.execute("COMMIT")

    def batches(self) -> set[int]:
        return {b for (b,) in self.con.execute("SELECT DISTINCT batch FROM files").fetchall()}

    def next_batch(self) -> int:
        (last,) = self.con.execute("SELECT max(batch) FROM files").fetchone()
        return 0 if last is None else last + 1

    def add(self, batch: int, stats: Iterable[tuple[str, int, int]]) -> None:
        """Record the files of a batch whose parts are all written: (path, size, mtime_ns)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", ((row_path(p), s, m, batch) for p, s, m in stats)
        )
        con.execute("COMMIT")

    def files(self) -> int:
        (n,) = self.con.execute("SELECT count(*) FROM files").fetchone()
        return int(n)

    def finish(self) -> None:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE meta SET value = 0 WHERE key = 'dirty'")
        con.execute("COMMIT")
        self.dirty = False


def row_path(path: str) -> str:
    """The name a file's rows carry in the datasets (``path``), which the manifest knows it by:
    the path, with the lone surrogates of a name that is not valid UTF-8 escaped (``\\udc9b``),
    as the frames write it (Arrow and SQLite store only UTF-8)."""
    return encodable(path)


def _walk_row(entry: tuple[str, int, int, int, str | None]) -> tuple[str, int, int, int, str | None, bytes | None]:
    path, size, mtime_ns, seq, problem = entry
    known = row_path(path)
    return known, size, mtime_ns, seq, problem, None if known == path else os.fsencode(path)


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # transactions are explicit
    try:
        con.execute("PRAGMA temp_store = FILE")  # the walk's tables on disk, not in memory
        # no fsync: a killed export leaves what it wrote in the system's cache, which the next one
        # reads (the Parquet parts are not synced either); a power cut may leave a damaged
        # manifest, which is then rebuilt
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA trusted_schema = OFF")  # a hostile file's views and triggers run nothing
    except sqlite3.DatabaseError:
        con.close()
        raise
    return con


def _check(con: sqlite3.Connection) -> bool | None:
    """Whether the manifest is dirty, or None when it is not one this version wrote: another
    application, tables or version, a value of the wrong type (every row is looked at: a
    damaged page raises here, not in the middle of an export)."""
    (app,) = con.execute("PRAGMA application_id").fetchone()
    if app != APPLICATION_ID:
        return None
    schema = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall())
    if schema != _TABLES:
        return None
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    if {k: meta.get(k) for k in _META} != _META or meta.get("dirty") not in (0, 1) or len(meta) != len(_META) + 1:
        return None
    (bad,) = con.execute(
        "SELECT count(*) FROM files WHERE typeof(path) != 'text' OR typeof(size) != 'integer' "
        "OR typeof(mtime_ns) != 'integer' OR typeof(batch) != 'integer' OR batch < 0 OR batch > 999999"
    ).fetchone()
    if bad:
        return None
    return bool(meta["dirty"])


def remove(out: Path) -> None:
    """Remove the manifest (and SQLite's side files, a journal that could roll it back)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.unlink(out / f"{MANIFEST}{suffix}")
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(out / f"{MANIFEST}{suffix}")
