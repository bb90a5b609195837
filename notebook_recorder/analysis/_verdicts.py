"""The verdicts of :func:`notebook_recorder.diff`: a fixed, documented vocabulary (no pandas here,
so the command line can list them without loading the frames)."""

from __future__ import annotations

from collections.abc import Iterable

#: Every verdict, in the order of how much they usually matter to a reviewer (the HTML view and
#: the command's table list pairs in this order, most significant first).
VERDICTS: tuple[str, ...] = (
    "error appeared",
    "removed",
    "tool calls changed",
    "structure changed",
    "finish changed",
    "request changed",
    "text changed",
    "added",
    "error gone",
    "same",
    "identical",
)

#: What each verdict means (the README's table, ``notebook-recorder diff --help``).
VERDICT_DOCS: dict[str, str] = {
    "identical": "the responses are equal, value for value (timing, headers and the recorder block aside)",
    "same": "the same answer; only ids, timestamps, fingerprints or usage differ (listed in changes)",
    "text changed": "the answer's text differs; similarity says how much is kept (0 to 1)",
    "tool calls changed": "the model asked for other tools, or the same tools with other arguments",
    "structure changed": "a JSON answer (structured output) has other keys or value types",
    "finish changed": "the answer ended for another reason (stop -> length, say)",
    "error appeared": "b raised where a answered",
    "error gone": "b answered where a raised",
    "request changed": "paired by place in the run: the request differs (request_diff), answer says the rest",
    "added": "a call only b made",
    "removed": "a call only a made",
}

#: The verdicts that ``notebook-recorder diff`` fails on by default (``--fail-on``).
DEFAULT_FAIL_ON: tuple[str, ...] = ("tool calls changed", "structure changed", "error appeared", "removed")

#: Verdicts that say the answer did not change.
UNCHANGED: frozenset[str] = frozenset({"identical", "same"})


def check_verdicts(names: Iterable[str], what: str = "verdict") -> list[str]:
    """``names`` as verdicts; an unknown one raises ``ValueError`` listing the valid ones."""
    out = []
    for name in names:
        cleaned = " ".join(str(name).replace("_", " ").replace("-", " ").split()).lower()
        if cleaned not in VERDICTS:
            raise ValueError(f"unknown {what} {name!r}; valid verdicts are: {', '.join(sorted(VERDICTS))}")
        out.append(cleaned)
    return out
