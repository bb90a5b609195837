"""``notebook-recorder export DIR... --to OUT``: recordings as four Parquet datasets (see
:mod:`notebook_recorder.analysis._export`)."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from ._common import CommandLineError, err, out


def cmd_export(args: argparse.Namespace) -> int:
    """Write (or bring up to date) the datasets; exit 0, or 2 on a usage error."""
    for src in args.src:
        if not Path(src).expanduser().exists():
            raise CommandLineError(f"no such file or directory: {src}")
    try:
        from ...analysis._export import export
    except ImportError as exc:  # pragma: no cover - pyarrow is in the [parquet] extra
        raise CommandLineError(f"export needs pyarrow: pip install 'notebook-recorder[parquet]' ({exc})") from None
    progress = None if args.progress is None else args.progress == "on"
    try:
        result = export([Path(s).expanduser() for s in args.src], Path(args.to).expanduser(), progress=progress)
    except FileExistsError as exc:
        raise CommandLineError(str(exc)) from None
    finally:
        # Arrow's readers keep native worker threads; left to the interpreter's last collection,
        # after Arrow's own teardown, one can abort the process ("terminate called without an
        # active exception", exit -6) once the export is done. Collected here, they end cleanly.
        gc.collect()
    out(str(result))
    if result.errors:
        err(f"{result.errors} file(s) could not be read: rows of calls with 'error' set")
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``export`` on the command line's subcommands."""
    export = sub.add_parser(
        "export",
        help="write recordings as Parquet datasets (calls, messages, tool_calls, chunks)",
        description="Write the recordings under DIR as four Parquet datasets under OUT (calls/, messages/, "
        "tool_calls/, chunks/: the columns and dtypes of the frames), partitioned by recording day. Run it "
        "again to bring OUT up to date: only new and changed files are read, and rows of deleted files are "
        "removed. Query OUT with DuckDB (nr.connect), pandas (nr.load_recordings(OUT)) or Spark.",
    )
    export.add_argument("src", nargs="+", metavar="DIR", help="recording directories or files")
    export.add_argument("--to", required=True, metavar="OUT", help="the dataset directory (created)")
    export.add_argument(
        "--progress", choices=["on", "off"], default=None, help="show a progress bar (default: in a terminal)"
    )
    export.set_defaults(parser=export, handler=cmd_export)
