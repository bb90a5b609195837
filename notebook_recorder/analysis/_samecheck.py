"""Whether two answers that look the same are ``identical`` or ``same``: the one part of
:func:`notebook_recorder.diff` that reads both files again. No pandas here, so that a large diff
can hand half of its pairs to a helper process (a fresh interpreter on the second CPU, as the
loader does, see ``_loader._Helper``): the result is the same either way.
"""

from __future__ import annotations

import pickle
import sys
import threading
from typing import Any

import orjson

__all__ = ["VOLATILE_KEYS", "check_pairs", "compare", "same_or_identical"]

#: Keys whose values differ from run to run whatever the model does: left out when two responses
#: are compared for ``same``.
VOLATILE_KEYS: frozenset[str] = frozenset(
    {
        "id",
        "created",
        "created_at",
        "completed_at",
        "system_fingerprint",
        "fingerprint",
        "obfuscation",
        "request_id",
        "response_id",
        "item_id",
        "call_id",
        "tool_call_id",
        "tool_use_id",
        "service_tier",
        "usage",
        "usage_metadata",
        "x-request-id",
        "request-id",
        "openai-processing-ms",
    }
)
#: notebook-recorder's own timing and metadata in ``response``: never compared.
_TIMING = frozenset({"duration_ms", "chunk_offsets_ms", "headers"})


_ABSENT = object()


def compare(
    a: Any,
    b: Any,
    path: str,
    volatile: set[str],
    other: list[str],
    drop: frozenset[str] = VOLATILE_KEYS,
    depth: int = 0,
) -> None:
    """Walk two JSON values where they differ: differing volatile keys go to ``volatile``, other
    differing paths (list items as ``[*]``) to ``other`` (at most 6). Equal subtrees are compared
    by ``==`` alone, at C speed."""
    if len(other) >= 6 or a == b:
        return
    if type(a) is dict and type(b) is dict and depth < 200:
        for k in [*a, *(k for k in b if k not in a)]:
            va, vb = a.get(k, _ABSENT), b.get(k, _ABSENT)
            if va is vb or va == vb:
                continue
            if k in drop:
                volatile.add(k)
                continue
            compare(va, vb, f"{path}.{k}" if path else str(k), volatile, other, drop, depth + 1)
    elif type(a) is list and type(b) is list and len(a) == len(b) and depth < 200:
        for x, y in zip(a, b, strict=True):
            if x != y:
                compare(x, y, f"{path}[*]", volatile, other, drop, depth + 1)
    elif (path or "(value)") not in other:
        other.append(path or "(value)")


def same_or_identical(path_a: str, path_b: str) -> tuple[str, str | None]:
    """``identical`` or ``same`` for two answers judged equal on the frames' columns, and the
    fields that differ (``None`` when none do)."""
    try:
        with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
            data_a, data_b = fa.read(), fb.read()
        if data_a == data_b:
            return "identical", None
        ra, rb = orjson.loads(data_a), orjson.loads(data_b)
    except (OSError, orjson.JSONDecodeError):
        return "same", None
    if type(ra) is not dict or type(rb) is not dict:
        return "same", None
    a, b = ra.get("response"), rb.get("response")
    if type(a) is dict and type(b) is dict:  # notebook-recorder's timing and headers: never compared
        a = {k: v for k, v in a.items() if k not in _TIMING}
        b = {k: v for k, v in b.items() if k not in _TIMING}
    volatile: set[str] = set()
    other: list[str] = []
    compare(a, b, "", volatile, other)
    if not volatile and not other:
        return "identical", None
    if not other:
        return "same", "volatile fields: " + ", ".join(sorted(volatile))
    return "same", "also differs: " + ", ".join(other)


#: Pairs from which a helper process checks half (``NOTEBOOK_RECORDER_LOAD_HELPER=0``: never).
PARALLEL_MIN_PAIRS = 1000


def check_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """:func:`same_or_identical` of each pair; the second half in a helper process when they are
    many and there is a second CPU (``NOTEBOOK_RECORDER_LOAD_HELPER=0``: never). If the helper
    cannot start or fails, this process checks them all: the result is the same."""
    from ._loader import _Helper, _send, spawn_helper

    if len(pairs) < PARALLEL_MIN_PAIRS or not _Helper.possible():
        return _check_all(pairs)
    half = len(pairs) // 2
    proc = spawn_helper(_HELPER_CODE, buffered=True)
    if proc is None:
        return _check_all(pairs)
    request = pickle.dumps((sys.path, pairs[half:]), protocol=pickle.HIGHEST_PROTOCOL)
    threading.Thread(target=_send, args=(proc.stdin, request), daemon=True).start()
    mine = _check_all(pairs[:half])
    try:
        assert proc.stdout is not None
        with proc.stdout:
            theirs: list[tuple[str, str | None]] = pickle.load(proc.stdout)
        if not isinstance(theirs, list) or len(theirs) != len(pairs) - half:
            raise ValueError("the helper's answer is not one verdict per pair")
    except Exception:  # the helper failed: check its half here
        theirs = _check_all(pairs[half:])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return mine + theirs


def _check_all(pairs: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    return [same_or_identical(a, b) for a, b in pairs]


_HELPER_CODE = """\
import pickle, sys
request = pickle.load(sys.stdin.buffer)
sys.path[:] = request[0]
from notebook_recorder.analysis._samecheck import _check_all
pickle.dump(_check_all(request[1]), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
"""
