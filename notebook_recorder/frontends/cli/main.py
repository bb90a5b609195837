"""The ``notebook-recorder`` command.

::

    notebook-recorder run NB... [--mode replay] [--check] [--output PATH | --no-store] [--timeout S]
    notebook-recorder ls DIR [--sort COLUMN] [--full]
    notebook-recorder show FILE|KEY [--dir DIR] [--max-chars N]
    notebook-recorder verify DIR [--strict] [--allow-type NAME] [--allow-unknown-types]
    notebook-recorder import SRC... DEST [--scope S]
    notebook-recorder export DIR... --to OUT
    notebook-recorder prune DIR --used-by NB... [--yes] [--timeout S]
    notebook-recorder diff A B | DIR --from REV [--to REV] [--fail-on VERDICT] [--json] [--all]
    notebook-recorder serve --mode MODE [--dir DIR] [--port N] [--upstream URL] [--host ADDR] [--pace [F]]

- ``run`` executes notebooks in a real kernel with ``APIREC_MODE`` set (``replay`` unless
  ``--mode`` says otherwise), printing a line per cell and a summary. It exits 1 when a cell
  raises, when a recording is missing (the message names the request, the nearest recorded one
  and how to record it), and with ``--check`` when the outputs differ from the stored ones (a
  unified diff per cell, after the sanitisers documented in :mod:`notebook_recorder.frontends.notebooks._comparison`).
- ``ls`` prints a table of the recordings in a directory tree.
- ``show`` prints one recording as readable text: the conversation, tool calls, the answer.
- ``verify`` checks a directory: every file parses, every name is its key (and occurrence), no
  key and occurrence twice, every ``__type__`` is on the allowlist that replay builds from
  (checked by name: nothing a file names is imported), no credential-looking strings. It exits 1
  when it finds a problem. Foreign types seen in real corpora (``_types.KNOWN_FOREIGN_TYPES``:
  llama-stack's tool results, ollama's responses) are notes, not problems, unless ``--strict``.
  It notes temporary files that interrupted writes left behind (harmless; not a failure).
- ``import`` copies recordings from another corpus (such as llama-stack's) under their
  canonical names, optionally re-scoped. Running it twice changes nothing.
- ``diff`` compares two runs, call by call, with a verdict each (:mod:`._diff`).
- ``export`` writes the recordings as four Parquet datasets (calls, messages, tool_calls,
  chunks), in batches on every CPU, and brings an earlier export up to date incrementally.
- ``prune`` runs notebooks in replay mode and lists the recordings none of them used, and stale
  temporary files; it deletes them only with ``--yes``. Entries that are not readable recordings
  are listed and never deleted.
- ``serve`` runs a loopback HTTP endpoint that records and replays other processes' API calls
  (:mod:`._serve`, :mod:`notebook_recorder.frontends.serve`).

This module parses the arguments; each command asks the package and prints the answer
(``ls``, ``show``, ``verify``, ``import``: :mod:`._cli_recordings`; ``run``, ``prune``:
:mod:`._cli_run`). Every command lists and reads files through :mod:`._store` and
:mod:`._files`: a FIFO, a link loop or a malformed file is named in the output and never stops or
hangs the command.

Exit status: 0 success, 1 failure (a check failed, a problem was found), 2 usage error.
Heavy modules (nbclient, pandas) are imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from ...analysis._verdicts import DEFAULT_FAIL_ON
from ...core._modes import ENV_DIR, valid_modes
from ...core._version import __version__
from ._common import PROG, CommandLineError
from ._diff import VERDICT_NAMES, cmd_diff
from ._export import add_export_parser
from ._recordings import SORTS, cmd_import, cmd_ls, cmd_show, cmd_verify
from ._run import cmd_prune, cmd_run
from ._serve import add_parser as add_serve_parser

__all__ = ["PROG", "CommandLineError", "build_parser", "main"]

# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subparser per command."""
    from ..notebooks._comparison import IGNORE_OUTPUT_TAGS, format_rules

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Record and replay OpenAI SDK calls and tool calls; run notebooks against the recordings.",
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    ignore_tags = " or ".join(sorted(IGNORE_OUTPUT_TAGS))
    run = sub.add_parser(
        "run",
        help="execute notebooks in a real kernel, replaying their recordings; --check compares outputs",
        description=textwrap.dedent(
            """\
            Execute each notebook in a fresh kernel (cwd: the notebook's directory), with
            APIREC_MODE=<mode> and NOTEBOOK_RECORDER_NOTEBOOK=<notebook path> so that %apirec
            finds recordings/<notebook stem>/ beside the notebook. Prints a line per cell and a
            summary. Exits 1 when a cell raises (unless tagged raises-exception), when a recording
            is missing, or, with --check, when outputs differ from the stored ones.
            """
        ),
        epilog=(
            "--check compares each code cell's outputs with the stored ones: stdout, stderr (as one block), rich\n"
            "outputs as text (HTML with its tags stripped, else text/plain), errors as 'ename: evalue';\n"
            f"images are ignored, and so are cells tagged {ignore_tags}, and the outputs notebook-recorder\n"
            "showed by itself (its notes and status tables, marked in their output metadata).\n"
            "Sanitisers applied to both sides first:\n" + format_rules()
        ),
        formatter_class=_Formatter,
    )
    run.add_argument("notebooks", nargs="+", metavar="NB", help="notebook files (.ipynb)")
    run.add_argument(
        "--mode",
        choices=valid_modes(),
        default="replay",
        help="APIREC_MODE for the kernel, which overrides the modes the notebook chooses "
        "(default: replay; the record modes need an API key)",
    )
    run.add_argument("--check", action="store_true", help="fail when outputs differ from the stored ones")
    run.add_argument(
        "--json", action="store_true", help="print JSON to stdout: {ok, notebooks: [...]}; progress goes to stderr"
    )
    run.add_argument(
        "--output",
        metavar="PATH",
        help="write the executed notebook here (a directory when running several); in the record modes "
        "it is written back to the notebook itself by default",
    )
    run.add_argument(
        "--no-store",
        action="store_true",
        help="in the record modes, leave the notebook file as it was (by default a record run that "
        "succeeds writes its outputs back into the notebook, so that the next `run NB --check` passes)",
    )
    run.add_argument(
        "--dir-out",
        metavar="DIR",
        help="write new recordings to DIR/<notebook stem>/ and leave the notebook's own recordings "
        "untouched (record: reads nothing; record-if-missing: replays from DIR's and then the notebook's "
        "recordings, copying what it replays into DIR); then compare with: diff recordings DIR",
    )
    run.add_argument(
        "--pace",
        type=_positive,
        nargs="?",
        const=1.0,
        metavar="F",
        help="replay streams at their recorded pace, F times as fast (default F: 1; 2 is twice as fast); "
        "without --pace, replay is instant",
    )
    _add_kernel_options(run)
    run.set_defaults(parser=run, handler=cmd_run)

    ls = sub.add_parser(
        "ls",
        help="list the recordings in a directory",
        description="A table of the recordings under DIR: key (* = the file name is not the key), kind, "
        "endpoint or tool, model, streaming, chunks, size, test_id.",
    )
    ls.add_argument("dir", metavar="DIR", help="a directory of recordings (searched recursively)")
    ls.add_argument("--sort", choices=sorted(SORTS), default="key", help="sort order (default: key)")
    ls.add_argument("--full", action="store_true", help="full keys and test ids, and the file column")
    ls.add_argument("--json", action="store_true", help="print JSON: {dir, recordings: [...]} (see the README)")
    ls.set_defaults(parser=ls, handler=cmd_ls)

    show = sub.add_parser(
        "show",
        help="print one recording as readable text",
        description="Print a recording: the request, the conversation, the tool calls and the (streamed) "
        "answer. TARGET is a file, or a key or unique key prefix looked up in --dir.",
    )
    show.add_argument("target", metavar="FILE|KEY", help="a recording file, a key, or a unique key prefix")
    show.add_argument("--dir", metavar="DIR", help=f"where to look keys up (default: ${ENV_DIR} or ./recordings)")
    show.add_argument(
        "--max-chars",
        type=int,
        default=1000,
        metavar="N",
        help="cut each message or answer after N characters (default: 1000; 0: no limit)",
    )
    show.set_defaults(parser=show, handler=cmd_show)

    verify = sub.add_parser(
        "verify",
        help="check a directory of recordings; exit 1 on problems",
        description="Check that every file parses, is named by its key, has a unique key and only "
        "__type__s that replay may build (the SDK's models and errors, builtin exceptions; checked by "
        "name, nothing a file names is imported), and holds nothing that looks like a credential "
        "(sk-..., Bearer ..., AKIA..., ghp_..., xoxb-..., JWTs, request headers, values under credential "
        "names). Foreign types known from real corpora (llama-stack tool results, ollama responses) are "
        "notes. Exits 1 when it finds a problem.",
    )
    verify.add_argument("dir", metavar="DIR", help="a directory of recordings (searched recursively)")
    verify.add_argument("--json", action="store_true", help="print JSON: {dir, files, ok, problems, notes}")
    verify.add_argument(
        "--strict",
        action="store_true",
        help="report known foreign __type__s (llama-stack's, ollama's) as problems too",
    )
    verify.add_argument(
        "--allow-type",
        action="append",
        metavar="NAME",
        help="accept this __type__ (your tools' result types, registered types); 'module.*' accepts a "
        "module's; repeatable",
    )
    verify.add_argument(
        "--allow-unknown-types",
        action="store_true",
        help="list every __type__ not on the allowlist as a note, not a problem (replay returns their raw data)",
    )
    verify.set_defaults(parser=verify, handler=cmd_verify)

    imp = sub.add_parser(
        "import",
        help="copy recordings from another corpus under canonical names",
        description="Copy recordings (llama-stack's layout: any tree of *.json) into DEST as <key>.json, "
        "the key recomputed from the content. Files that cannot be keyed are skipped with a note. "
        "Running it twice changes nothing.",
    )
    imp.add_argument("src", nargs="+", metavar="SRC", help="recording files or directories")
    imp.add_argument("dest", metavar="DEST", help="the directory to write to")
    imp.add_argument(
        "--scope",
        metavar="S",
        help="set test_id (the scope) to S before keying; '' or 'none' means null",
    )
    imp.set_defaults(parser=imp, handler=cmd_import)

    prune = sub.add_parser(
        "prune",
        help="list (and with --yes delete) recordings that no given notebook replays",
        description="Run each notebook in replay mode, collect the recording files it used, and list the "
        "files under DIR that none used, and temporary files left by interrupted writes. Deletes them only "
        "with --yes; deletes nothing if a notebook fails. Entries that are not readable recordings are listed, "
        "never deleted.",
    )
    prune.add_argument("dir", metavar="DIR", help="the recordings directory to prune")
    prune.add_argument("--used-by", nargs="+", required=True, metavar="NB", help="the notebooks that use DIR")
    prune.add_argument("--yes", action="store_true", help="really delete the unused recordings")
    _add_kernel_options(prune)
    prune.set_defaults(parser=prune, handler=cmd_prune)

    diff = sub.add_parser(
        "diff",
        help="compare two runs call by call: what changed when the model, the prompt or the SDK changed",
        description=textwrap.dedent(
            """\
            Compare two directories of recordings (a committed run and a re-recorded one, say:
            run NB --mode record --dir-out NEW), or two git revisions of one directory (read
            with git archive; nothing is checked out). Calls are paired by key and occurrence,
            then, for requests that changed, by their place in the run (test or notebook, then
            order). Prints the verdict counts and the calls that changed; exits 1 when a call's
            verdict is in --fail-on.
            """
        ),
        epilog="verdicts:\n"
        + "\n".join(f"  {name:<19} {_verdict_doc(name)}" for name in VERDICT_NAMES)
        + f"\n\n--fail-on defaults to: {', '.join(DEFAULT_FAIL_ON)}. A request changed pair fails when its\n"
        "answer's verdict (the answer column) is in --fail-on.",
        formatter_class=_Formatter,
    )
    diff.add_argument("a", metavar="A", help="the first run: a directory of recordings (or DIR, with --from)")
    diff.add_argument("b", metavar="B", nargs="?", help="the second run: a directory of recordings")
    diff.add_argument("--from", dest="rev_from", metavar="REV", help="compare DIR as it was at git revision REV ...")
    diff.add_argument("--to", dest="rev_to", metavar="REV", help="... with DIR at REV (default: the files on disk)")
    diff.add_argument(
        "--fail-on",
        action="append",
        metavar="VERDICT",
        help="exit 1 when a call has this verdict; repeatable or comma-separated; 'none' never fails "
        f"(default: {', '.join(DEFAULT_FAIL_ON)})",
    )
    diff.add_argument("--json", action="store_true", help="print JSON: {a, b, ok, fail_on, counts, calls: [...]}")
    diff.add_argument("--all", action="store_true", help="list every call, unchanged ones too")
    diff.set_defaults(parser=diff, handler=cmd_diff)
    add_export_parser(sub)
    add_serve_parser(sub)
    return parser


def _verdict_doc(name: str) -> str:
    from ._diff import VERDICT_HELP

    return VERDICT_HELP[name]


def _add_kernel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=300.0,
        metavar="S",
        help="seconds each cell may take (default: 300)",
    )
    parser.add_argument(
        "--kernel",
        default="python3",
        metavar="NAME",
        help="kernel to run (default: python3, the Python running this command)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, and usage errors
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    try:
        status: int = args.handler(args)
        return status
    except CommandLineError as exc:
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return number


if __name__ == "__main__":
    sys.exit(main())
