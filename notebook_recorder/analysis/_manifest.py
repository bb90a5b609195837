"""The manifest of an exported dataset: ``OUT/_manifest.sqlite``, read and updated on disk.

One row per exported file (directory, name, size, modification time, batch), in an SQLite
database (the standard library's), so that an export compares the files it finds with the
manifest and updates only the rows that changed, without holding either in memory: each
directory the walk lists is compared with the manifest's rows of that directory (one range of
its key), in Python; only what differs (files to read, rows to remove) and one row per directory
go into temporary tables. An unchanged file of a directory never enters SQLite (files named one
by one are compared there, in chunks), and memory stays that of one directory's listing and
SQLite's page cache (a few MB), whatever the corpus size. A directory whose rows did not change
keeps a digest of them (``dirs``: names, sizes and times, in name order): a listing with the same
digest is unchanged, without reading its rows.

Crash safety comes from the order of the commits (an export killed at any point, or stopped by a
full disk, leaves a manifest that the next export can trust):

1. :meth:`Manifest.begin` marks the dataset ``dirty`` and every file whose rows are about to be
   removed as "read again" (``mtime_ns = -1``), in one transaction, before any part is touched.
2. Rows are removed from the parts; then those files leave the manifest.
3. Each batch of new rows is committed once all its parts are written: an export that stops
   keeps the batches it finished.
4. :meth:`Manifest.finish` clears ``dirty`` once ``tool_calls`` and its index are up to date.

:meth:`Manifest.begin` also forgets the digest of every directory whose rows change (in the same
transaction), and :meth:`Manifest.remember` computes them again from the rows once they are
final: a digest is never that of rows the directory no longer has.

An export that finds the dataset ``dirty`` deletes the parts of batches the manifest does not
know (those of a batch that was being written) and rebuilds ``tool_calls`` from the raw parts.

A manifest that is not one (an older ``_manifest.json``, a damaged or hostile file, another
schema or version) is never trusted: :meth:`Manifest.open` returns None and the dataset is
rebuilt whole. Open checks what it can without reading every row (the schema, the header, the
least and greatest batch and directory); a row's values are checked where they are read (a batch that is not
one, text that is not UTF-8, a damaged page raise :class:`sqlite3.DatabaseError`), and the
export then rebuilds the dataset too. A size, time or name of another type is only ever
compared with what the walk finds, so it reads as "changed".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..core._terminal import encodable
from ._layout import _FORMAT, APPLICATION_ID, MANIFEST, SCHEMA_VERSION

MANIFEST_VERSION = 2  # 1: files keyed by path, no digests
#: Rows per page when batches are formed from the files to read.
CHUNK = 5000
#: Batches are numbered from 0 to this (``part-000000`` to ``part-999999``).
MAX_BATCH = 999_999
SEP = os.sep

_TABLES = {  # name -> the exact statement that made it (a manifest with anything else is rebuilt)
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "files": (
        "CREATE TABLE files (dir TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, "
        "mtime_ns INTEGER NOT NULL, batch INTEGER NOT NULL, PRIMARY KEY (dir, name)) WITHOUT ROWID"
    ),
    "files_batch": "CREATE INDEX files_batch ON files (batch)",
    "dirs": "CREATE TABLE dirs (dir TEXT PRIMARY KEY, digest BLOB NOT NULL) WITHOUT ROWID",
}
#: A file found by the walk: (path, size, mtime_ns, problem); size and time -1 for an entry that
#: cannot be read (``problem`` says why) or a file that could not be stat'ed.
Entry = tuple[str, int, int, "str | None"]
# an entry found alone (a) and its manifest row (f): read again (-1 is "read again next time",
# or an entry that could not be stat'ed or read), or changed
_CHANGED = "(f.mtime_ns = -1 OR a.mtime_ns = -1 OR f.size != a.size OR f.mtime_ns != a.mtime_ns)"
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

    def compare(self, groups: Iterable[tuple[str | None, list[Entry]]]) -> None:
        """Compare the files found with the manifest: ``groups`` are, in walk order, each
        directory's listing (its path, as :func:`dir_key` gives it, and its entries, in name
        order) or an entry found alone (``None`` and one entry: a file named directly, or a
        directory seen again). A path seen twice keeps its first place.

        A path is known by the name its rows carry (:func:`row_path`); a name that is not valid
        UTF-8 keeps its bytes beside it in ``todo`` (``raw``), which are what is read. Temporary
        tables: ``todo`` (what to read: new, changed, or read again, in walk order), ``stale``
        (the manifest's files whose rows go: changed, read again, or not found), ``listed`` (each
        directory listed, its first place, and whether its digest is to be computed again),
        ``placed`` (the place of each file found alone, or in a directory with a name that is not
        UTF-8), ``missing`` (the manifest's files that a listing did not have)."""
        con = self.con
        for table, columns in (
            ("todo", "(path TEXT UNIQUE, size INTEGER, problem TEXT, raw BLOB, dir TEXT)"),
            ("stale", "(dir TEXT, name TEXT, batch INTEGER, PRIMARY KEY (dir, name)) WITHOUT ROWID"),
            ("listed", "(dir TEXT PRIMARY KEY, seq INTEGER, remember INTEGER) WITHOUT ROWID"),
            ("placed", "(dir TEXT, name TEXT, seq INTEGER, PRIMARY KEY (dir, name)) WITHOUT ROWID"),
            ("missing", "(dir TEXT, name TEXT, batch INTEGER, PRIMARY KEY (dir, name)) WITHOUT ROWID"),
            (
                "alone",
                "(dir TEXT, name TEXT, seq INTEGER, size INTEGER, mtime_ns INTEGER, problem TEXT, path TEXT, "
                "raw BLOB, PRIMARY KEY (dir, name)) WITHOUT ROWID",
            ),
        ):
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")
            con.execute(f"CREATE TEMP TABLE {table} {columns}")
        con.execute("BEGIN")
        seq = 0
        alone: list[tuple[Entry, int]] = []  # found alone, or in a directory listed before
        for listed, entries in groups:
            if listed is not None:
                d = row_path(listed)
                if con.execute("SELECT 1 FROM listed WHERE dir = ?", (d,)).fetchone() is None:
                    if alone:
                        self._alone(alone)
                        alone = []
                    self._listing(d, len(listed) + 1, entries, seq)
                    seq += len(entries)
                    continue
            for entry in entries:
                alone.append((entry, seq))
                seq += 1
            if len(alone) >= CHUNK:
                self._alone(alone)
                alone = []
        if alone:
            self._alone(alone)
        # the files of the listed directories that their listings did not have, and those of
        # the directories not listed, go unless found alone
        con.execute(
            "INSERT OR IGNORE INTO stale SELECT dir, name, batch FROM missing m "
            "WHERE NOT EXISTS (SELECT 1 FROM placed p WHERE p.dir = m.dir AND p.name = m.name)"
        )
        row = con.execute("SELECT min(dir) FROM files").fetchone()
        while row is not None and row[0] is not None:  # each directory of the manifest, by its key
            (d,) = row
            if con.execute("SELECT 1 FROM listed WHERE dir = ?", (d,)).fetchone() is None:
                con.execute(
                    "INSERT OR IGNORE INTO stale SELECT dir, name, batch FROM files f WHERE dir = ? "
                    "AND NOT EXISTS (SELECT 1 FROM placed p WHERE p.dir = f.dir AND p.name = f.name)",
                    (d,),
                )
            row = con.execute("SELECT dir FROM files WHERE dir > ? ORDER BY dir LIMIT 1", (d,)).fetchone()
        con.execute("CREATE INDEX temp.stale_batch ON stale (batch)")
        con.execute("COMMIT")

    def _listing(self, d: str, skip: int, entries: list[Entry], first: int) -> None:
        """Compare one directory's listing (its key ``d``; its entries' names after ``skip``
        characters of their paths; ``first``: the place of its first entry) with the manifest's
        rows of that directory."""
        con = self.con
        kept = con.execute("SELECT digest FROM dirs WHERE dir = ?", (d,)).fetchone()
        if kept is not None and entries and kept[0] == _digest(*_columns(entries, skip)):
            con.execute("INSERT INTO listed VALUES (?, ?, 0)", (d, first))  # unchanged
            return
        known = {
            row[0]: row for row in con.execute("SELECT name, size, mtime_ns, batch FROM files WHERE dir = ?", (d,))
        }
        con.execute("INSERT INTO listed VALUES (?, ?, 1)", (d, first))
        todo: list[tuple[str, int, str | None, bytes | None, str]] = []
        stale: list[tuple[str, str, int]] = []
        plain = True  # every name is valid UTF-8 (its key sorts as its name)
        pop = known.pop
        for path, size, mtime_ns, problem in entries:
            name = path[skip:]
            if not name.isascii() and row_path(name) != name:
                name, plain = row_path(name), False
            old = pop(name, None)
            if old is None or old[2] != mtime_ns or old[1] != size or old[2] == -1 or problem is not None:
                todo.append((*_todo_row(path, size, problem), d))
                if old is not None:
                    stale.append((d, name, old[3]))
        if todo:
            con.executemany("INSERT OR IGNORE INTO todo VALUES (?, ?, ?, ?, ?)", todo)
        if stale:
            con.executemany("INSERT OR IGNORE INTO stale VALUES (?, ?, ?)", stale)
        if known:
            con.executemany("INSERT OR IGNORE INTO missing VALUES (?, ?, ?)", ((d, n, r[3]) for n, r in known.items()))
        if not plain:  # the order of such names is kept as found
            con.executemany(
                "INSERT OR IGNORE INTO placed VALUES (?, ?, ?)",
                ((d, row_path(e[0][skip:]), first + i) for i, e in enumerate(entries)),
            )

    def _alone(self, entries: list[tuple[Entry, int]]) -> None:
        """Compare entries found alone (each with its place) with their manifest rows, in SQL (a
        source may name many files), but those found before (a path keeps its first place)."""
        con = self.con
        rows = []
        seen: set[str] = set()
        for (path, size, mtime_ns, problem), seq in entries:
            known = row_path(path)
            if known not in seen:
                seen.add(known)
                d, _, name = known.rpartition(SEP)
                rows.append(
                    (d, name, seq, size, mtime_ns, problem, known, None if known == path else os.fsencode(path))
                )
        con.execute("DELETE FROM alone")
        con.executemany("INSERT INTO alone VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute(
            "DELETE FROM alone WHERE EXISTS (SELECT 1 FROM placed p WHERE p.dir = alone.dir AND p.name = alone.name) "
            "OR EXISTS (SELECT 1 FROM todo t WHERE t.path = alone.path) "
            "OR EXISTS (SELECT 1 FROM listed l JOIN files f ON f.dir = l.dir WHERE l.dir = alone.dir "
            "AND f.name = alone.name AND NOT EXISTS (SELECT 1 FROM missing m WHERE m.dir = f.dir AND m.name = f.name))"
        )
        con.execute("INSERT INTO placed SELECT dir, name, seq FROM alone")
        con.execute(
            "INSERT OR IGNORE INTO todo SELECT a.path, a.size, a.problem, a.raw, a.dir FROM alone a LEFT JOIN files f "
            f"ON f.dir = a.dir AND f.name = a.name WHERE f.name IS NULL OR {_CHANGED} ORDER BY a.seq"
        )
        con.execute(
            "INSERT OR IGNORE INTO stale SELECT f.dir, f.name, f.batch FROM alone a JOIN files f "
            f"ON f.dir = a.dir AND f.name = a.name WHERE {_CHANGED}"
        )

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
        """The walk order of ``paths`` (those found by this export; by the names their rows
        carry), as ranks among them: a file of a listed directory sorts by the directory's
        place, then by name; a file found alone, by its own place."""
        con = self.con
        keys: dict[str, tuple[int, str]] = {}
        for path in paths:
            d, _, name = path.rpartition(SEP)
            row = con.execute("SELECT seq FROM placed WHERE dir = ? AND name = ?", (d, name)).fetchone()
            if row is not None:
                keys[path] = (row[0], "")
                continue
            row = con.execute("SELECT seq FROM listed WHERE dir = ?", (d,)).fetchone()
            if row is not None:
                keys[path] = (row[0], name)
        return {path: i for i, path in enumerate(sorted(keys, key=keys.__getitem__))}

    # --- updating ---

    def begin(self) -> None:
        """Mark the dataset dirty and the stale files as "read again", before any part changes."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE meta SET value = 1 WHERE key = 'dirty'")
        con.execute(
            "UPDATE files SET mtime_ns = -1 WHERE (dir, name) IN (SELECT dir, name FROM stale) AND mtime_ns != -1"
        )
        changed = "SELECT dir FROM stale UNION SELECT dir FROM todo"  # directories whose rows change
        con.execute(f"DELETE FROM dirs WHERE dir IN ({changed})")
        con.execute(f"UPDATE listed SET remember = 1 WHERE dir IN ({changed})")
        con.execute("COMMIT")

    def stale_by_batch(self) -> Iterator[tuple[int, list[str]]]:
        """The files whose rows go, by the batch that holds them."""
        batches = [_batch(b) for (b,) in self.con.execute("SELECT DISTINCT batch FROM stale ORDER BY batch")]
        for batch in batches:
            rows = self.con.execute("SELECT dir, name FROM stale WHERE batch = ?", (batch,)).fetchall()
            paths = [f"{d}{SEP}{name}" for d, name in rows]
            yield batch, paths

    def drop_stale(self) -> None:
        """The stale files' rows are gone from the parts: they leave the manifest."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM files WHERE (dir, name) IN (SELECT dir, name FROM stale)")
        con.execute("COMMIT")

    def batches(self) -> set[int]:
        return {_batch(b) for (b,) in self.con.execute("SELECT DISTINCT batch FROM files")}

    def next_batch(self) -> int:
        (last,) = self.con.execute("SELECT max(batch) FROM files").fetchone()
        return 0 if last is None else _batch(last) + 1

    def add(self, batch: int, stats: Iterable[tuple[str, int, int]]) -> None:
        """Record the files of a batch whose parts are all written: (path, size, mtime_ns)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
            ((*row_path(p).rpartition(SEP)[::2], s, m, batch) for p, s, m in stats),
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
        self.remember()

    def remember(self) -> None:
        """Keep the digest of the rows of each directory listed whose rows changed, or whose
        digest was not kept (none for a directory with a file to read again next time)."""
        con = self.con
        dirs = [d for (d,) in con.execute("SELECT dir FROM listed WHERE remember = 1").fetchall()]
        if not dirs:
            return
        con.execute("BEGIN IMMEDIATE")
        for d in dirs:
            rows = con.execute("SELECT name, size, mtime_ns FROM files WHERE dir = ? ORDER BY name", (d,)).fetchall()
            digest = _digest(*zip(*rows, strict=True)) if rows and all(m != -1 for _, _, m in rows) else None
            if digest is not None:
                con.execute("INSERT OR REPLACE INTO dirs VALUES (?, ?)", (d, digest))
            else:
                con.execute("DELETE FROM dirs WHERE dir = ?", (d,))
        con.execute("UPDATE listed SET remember = 0")
        con.execute("COMMIT")


def row_path(path: str) -> str:
    """The name a file's rows carry in the datasets (``path``), which the manifest knows it by:
    the path, with the lone surrogates of a name that is not valid UTF-8 escaped (``\\udc9b``),
    as the frames write it (Arrow and SQLite store only UTF-8)."""
    return encodable(path)


def dir_key(directory: str) -> str:
    """The directory part of the paths of ``directory``'s entries (``a/`` -> ``a``): what the
    manifest keys its files by, beside their names."""
    return os.path.join(directory, "_").rpartition(SEP)[0]


def _columns(entries: list[Entry], skip: int) -> tuple[list[str], tuple[int, ...], tuple[int, ...]]:
    """A listing's names (its paths after ``skip`` characters), sizes and times."""
    paths, sizes, mtimes, _ = zip(*entries, strict=True)
    return [p[skip:] for p in paths], sizes, mtimes


def _digest(names: Sequence[str], sizes: Sequence[int], mtimes: Sequence[int]) -> bytes | None:
    """A directory's files (names, sizes and times, in name order), as 16 bytes; None when a
    value is not an integer of 64 bits (a manifest's row can hold anything). A name that is not
    UTF-8 is encoded by its raw bytes here, and escaped in the manifest's rows: never equal."""
    try:
        numbers = array("q", sizes).tobytes() + array("q", mtimes).tobytes()
        text = "\0".join(names).encode("utf-8", "surrogateescape")  # no name holds a NUL
    except (TypeError, OverflowError, UnicodeEncodeError):
        return None
    return hashlib.blake2b(text + numbers, digest_size=16).digest()


def _todo_row(path: str, size: int, problem: str | None) -> tuple[str, int, str | None, bytes | None]:
    known = row_path(path)
    return known, size, problem, None if known == path else os.fsencode(path)


def _text(value: bytes) -> str:
    """Text read from the manifest; text that is not UTF-8 (a hostile or damaged manifest)
    raises :class:`sqlite3.DatabaseError`, on which the export rebuilds the dataset (sqlite3's
    own error would be an ``OperationalError``, which stops it)."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise sqlite3.DatabaseError(f"the manifest holds text that is not UTF-8: {value!r}") from None


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # transactions are explicit
    con.text_factory = _text
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
    # Without a scan of every row (milliseconds per 10,000 files, on every export): SQLite orders
    # NULL before numbers before text before blobs, so the least and greatest of an indexed
    # column, two lookups, tell its type. A batch, the one value that names a file
    # (``part-<batch>``), must be a whole number in range (a fraction is refused where a batch is
    # read: :func:`_batch`); a directory, text. Sizes, times and names are only compared with what
    # the walk finds (another type reads as "changed"). A damaged page may then show only later:
    # the export rebuilds the dataset there too.
    for column, valid in (("batch", _is_batch), ("dir", _is_text)):
        (low,) = con.execute(f"SELECT min({column}) FROM files").fetchone()  # one aggregate a query:
        (high,) = con.execute(f"SELECT max({column}) FROM files").fetchone()  # an index's first or last
        if low is not None and not (valid(low) and valid(high)):
            return None
    (bad,) = con.execute("SELECT count(*) FROM dirs WHERE typeof(dir) != 'text' OR typeof(digest) != 'blob'").fetchone()
    if bad:
        return None
    return bool(meta["dirty"])


def _is_text(value: object) -> bool:
    return type(value) is str


def _is_batch(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_BATCH


def _batch(value: object) -> int:
    """A batch number read from the manifest; a value that is not one (a hostile or damaged
    manifest) raises :class:`sqlite3.DatabaseError`, on which the export rebuilds the dataset."""
    if not _is_batch(value):
        raise sqlite3.DatabaseError(f"the manifest holds a batch that is not one: {value!r}")
    return value  # type: ignore[return-value]


def remove(out: Path) -> None:
    """Remove the manifest (and SQLite's side files, a journal that could roll it back)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.unlink(out / f"{MANIFEST}{suffix}")
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(out / f"{MANIFEST}{suffix}")
