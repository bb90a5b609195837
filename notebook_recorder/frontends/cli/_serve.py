"""``notebook-recorder serve``: the recording endpoint in the foreground (see :mod:`._serve`)."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from ...core._modes import valid_modes
from ._common import PROG, CommandLineError

__all__ = ["add_parser", "cmd_serve"]

DESCRIPTION = """\
A loopback HTTP server that speaks OpenAI's and Anthropic's APIs, for clients that are not Python
in this process (Node, curl, R, a compiled agent, a container). Point them at it:
  OPENAI_BASE_URL=http://127.0.0.1:PORT/v1   ANTHROPIC_BASE_URL=http://127.0.0.1:PORT
replay answers from DIR (a missing recording is a 404 naming the nearest recorded request);
record and record-if-missing forward to the upstream with the client's own key, stream the
answer back as it arrives and write the same files an in-process recording would; live
forwards and writes nothing. Headers are never written. Clients that send
X-Apirec-Session: NAME get their own occurrence counts (else one count per server run).
--pace replays streams with their recorded gaps between chunks (as run --pace does).
Needs the serve extra: pip install 'notebook-recorder[serve]'."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``serve`` subcommand's parser."""
    serve = sub.add_parser(
        "serve",
        help="a loopback HTTP endpoint that records and replays API calls of other processes",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--mode", choices=valid_modes(), required=True, help="replay, record, record-if-missing or live")
    serve.add_argument("--dir", metavar="DIR", help="the recordings directory (default: $APIREC_DIR or ./recordings)")
    serve.add_argument("--port", type=_port, default=0, metavar="N", help="the port (default: 0, a free one, printed)")
    serve.add_argument(
        "--upstream",
        metavar="URL",
        help="where record/live forward, e.g. http://127.0.0.1:11434 (default: https://api.openai.com, or "
        "https://api.anthropic.com for Anthropic's requests); the request's path is appended, /v1 not doubled",
    )
    serve.add_argument("--scope", metavar="S", help="a name that enters every key (written as test_id)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: 127.0.0.1); any other exposes the recordings and, "
        "in record mode, the keys clients send: a warning is printed",
    )
    serve.add_argument(
        "--max-body", type=_port, default=32 * 1024 * 1024, metavar="BYTES", help="largest request body (413 beyond)"
    )
    serve.add_argument(
        "--pace",
        type=_pace,
        nargs="?",
        const=1.0,
        metavar="F",
        help="in replay, streams arrive at their recorded pace, F times as fast (default F: 1; 2 is twice "
        "as fast, 0.5 half as fast); without --pace, replay is instant",
    )
    serve.add_argument("--quiet", action="store_true", help="no line per request on stderr")
    serve.set_defaults(parser=serve, handler=cmd_serve)


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return number


def _pace(value: str) -> float:
    from ...core._modes import parse_pace

    try:
        pace = parse_pace(value, "--pace")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--pace: ")) from None
    assert pace is not None
    return pace


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C); print the URL and the base-URL variables first."""
    import warnings

    try:
        from ..serve._server import run_forever
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise CommandLineError(str(exc)) from None
    if args.mode == "replay" and args.dir is not None and not Path(args.dir).is_dir():
        # In a notebook a missing directory is one with nothing recorded yet, each call explained;
        # a server that could only ever answer 404 is a mistyped --dir.
        raise CommandLineError(f"--dir {args.dir} does not exist: a replay server would have nothing to serve")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *rest: print(f"{PROG} serve: warning: {message}", file=sys.stderr)
        try:
            server = run_forever(
                args.mode,
                args.dir,
                port=args.port,
                host=args.host,
                upstream=args.upstream,
                scope=args.scope,
                max_body=args.max_body,
                quiet=args.quiet,
                pace=args.pace,
            )
            url = next(server)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = f"--port {args.port}: already in use on {args.host} (another server?); "
                message += "--port 0 picks a free one"
                raise CommandLineError(message) from None
            raise CommandLineError(str(exc)) from None
        except (ImportError, ValueError) as exc:
            raise CommandLineError(str(exc)) from None
    print(f"{PROG} serve: {args.mode} at {url}", flush=True)
    print(f"  export OPENAI_BASE_URL={url}/v1", flush=True)
    print(f"  export ANTHROPIC_BASE_URL={url}", flush=True)
    if args.mode != "replay" and not args.quiet:
        from ..serve._upstream import environment_proxies

        for proxy in dict.fromkeys(environment_proxies().by_scheme.values()):
            said = proxy.problem or f"forwarding through {proxy.shown} (NO_PROXY and loopback upstreams go direct)"
            print(f"{PROG} serve: {said}", file=sys.stderr)
    if args.pace is not None and not args.quiet:
        print(f"{PROG} serve: replayed streams arrive at their recorded pace x{args.pace:g}", file=sys.stderr)
    try:
        next(server, None)
    except KeyboardInterrupt:
        pass
    return 0
