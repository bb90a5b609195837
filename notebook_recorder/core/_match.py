"""Match rules: which parts of a request are left out of its key, or normalised first.

Defaults are strict: with no rules, a key is FORMAT.md's key of the request as it was sent. Rules
are for the parts a user knows are volatile (a date in a prompt, a run id in ``metadata``):

- ``ignore``: paths in the syntax the missing-recording diff prints, ``body.metadata.run_id``,
  ``body.messages[0].content``; ``[*]`` stands for every item of a list. ``body.`` paths apply to
  API requests, ``kwargs.`` paths to ``@nr.tool`` calls. An ignored field is left out of the key
  (a request without it matches one with it).
- ``normalize``: ``{regex: replacement}``, applied with ``re.sub`` to every string of the request
  body and of a tool's kwargs, in order; or a callable that takes an API request's body (a copy)
  and returns the body to key (tools are not passed to it).

They are applied in that order: ignores, then regexes, then the callable. The key is computed over
the result; the recording file keeps the request as it was sent, plus a ``match`` field naming
the rules (a callable by its qualified name), so the content index can re-key stored requests
under the rules in force when those change.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Normalizer = Callable[[Any], Any]
NormalizeArg: TypeAlias = "Mapping[str, str] | Normalizer | Rules | None"

ROOTS = ("body", "kwargs")
_SEGMENT = r"(?:\.[^.\[\]\s]+|\[(?:\d+|\*)\])"
_PATH = re.compile(rf"(?P<root>[^.\[\]\s]+)(?P<rest>{_SEGMENT}*)")
_PARTS = re.compile(r"\.(?P<name>[^.\[\]\s]+)|\[(?P<index>\d+|\*)\]")
_PATH_FORMS = "body.metadata.run_id, body.messages[0].content, body.messages[*].content or kwargs.query"

WILDCARD = "*"


def parse_path(path: str) -> tuple[str, tuple[str | int, ...]]:
    """``"body.messages[0].content"`` as ``("body", ("messages", 0, "content"))``.

    Raises ``ValueError`` naming the path, and the forms it may take, when it is not one.
    """
    text = path.strip() if isinstance(path, str) else path
    match = _PATH.fullmatch(text) if isinstance(text, str) else None
    if match is None or match.group("root") not in ROOTS or not match.group("rest"):
        raise ValueError(
            f"ignore path {path!r} is not a request path: it starts with body. (an API request's "
            f"body) or kwargs. (a tool's arguments), as the missing-recording diff prints them, "
            f"e.g. {_PATH_FORMS}"
        )
    parts: list[str | int] = []
    for part in _PARTS.finditer(match.group("rest")):
        name, index = part.group("name"), part.group("index")
        if name is not None:
            parts.append(name)
        else:
            parts.append(WILDCARD if index == WILDCARD else int(index))
    return match.group("root"), tuple(parts)


def _compile(pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"normalize pattern {pattern!r} must be a non-empty regular expression string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"normalize pattern {pattern!r} is not a valid regular expression: {exc}") from None


def parse_normalize_flag(value: str) -> tuple[str, str]:
    """``--normalize PATTERN=REPLACEMENT`` as ``(pattern, replacement)``; split at the last ``=``
    (a replacement has none; a pattern may: ``(?=...)``)."""
    pattern, sep, replacement = value.rpartition("=")
    if not sep or not pattern:
        raise ValueError(
            f"--normalize {value!r}: expected PATTERN=REPLACEMENT, a regular expression and what "
            r"replaces its matches, e.g. --normalize '\d{4}-\d{2}-\d{2}=<date>'"
        )
    _compile(pattern)
    return pattern, replacement


def _callable_name(fn: Normalizer) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__qualname__
    return f"{module}.{name}"


@dataclass(frozen=True)
class Rules:
    """A set of match rules (see the module doc). ``Rules()`` is strict: it changes nothing."""

    ignore: tuple[str, ...] = ()
    normalize: tuple[tuple[str, str], ...] = ()
    normalizer: Normalizer | None = None
    normalizer_name: str | None = None  # for rules read from a file, whose callable is not ours
    _paths: tuple[tuple[str, tuple[str | int, ...]], ...] = field(default=(), repr=False, compare=False)
    _patterns: tuple[tuple[re.Pattern[str], str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_paths", tuple(parse_path(p) for p in self.ignore))
        object.__setattr__(self, "_patterns", tuple((_compile(p), r) for p, r in self.normalize))
        if self.normalizer is not None and not callable(self.normalizer):
            raise TypeError(
                f"normalize must be a mapping of pattern to replacement or a callable, not {self.normalizer!r}"
            )

    @classmethod
    def build(cls, ignore: Iterable[str] | str | None = None, normalize: NormalizeArg = None) -> Rules:
        """Rules from the ``ignore=`` and ``normalize=`` arguments users pass."""
        if isinstance(ignore, str):
            ignore = [ignore]
        paths = tuple(dict.fromkeys(str(p).strip() if isinstance(p, str) else p for p in (ignore or ())))
        if normalize is None:
            return cls(ignore=paths)
        if isinstance(normalize, Rules):  # another recorder's normalizers, regexes and callable both
            return cls(paths, normalize.normalize, normalize.normalizer, normalize.normalizer_name)
        if isinstance(normalize, Mapping):
            for pattern, replacement in normalize.items():
                if not isinstance(replacement, str):
                    raise ValueError(f"normalize {pattern!r}: the replacement must be a string, not {replacement!r}")
            return cls(ignore=paths, normalize=tuple((str(p), r) for p, r in normalize.items()))
        if callable(normalize):
            return cls(ignore=paths, normalizer=normalize, normalizer_name=_callable_name(normalize))
        raise TypeError(
            f"normalize must be a mapping of regular expression to replacement, or a callable taking and "
            f"returning the request body, not {type(normalize).__name__}"
        )

    def merged(self, other: Rules) -> Rules:
        """These rules plus ``other``'s: ignores together, ``other``'s replacement for a pattern
        both have, ``other``'s callable if it has one."""
        patterns = dict(self.normalize)
        patterns.update(other.normalize)
        normalizer = other.normalizer or self.normalizer
        return Rules(
            ignore=tuple(dict.fromkeys([*self.ignore, *other.ignore])),
            normalize=tuple(patterns.items()),
            normalizer=normalizer,
            normalizer_name=other.normalizer_name if other.normalizer else self.normalizer_name,
        )

    def __bool__(self) -> bool:
        return bool(self.ignore or self.normalize or self.normalizer_name)

    @property
    def fingerprint(self) -> str:
        """Equal for rules that key every request the same way (an index is kept per fingerprint)."""
        if not self:
            return ""
        return json.dumps([list(self.ignore), self.normalize, self.normalizer_name, id(self.normalizer)])

    @property
    def opaque(self) -> bool:
        """Rules read from a file whose callable normalizer cannot be run here."""
        return self.normalizer_name is not None and self.normalizer is None

    # -- applying -----------------------------------------------------------------------------

    def apply(self, root: str, value: Any) -> Any:
        """``value`` (a request's ``body``, or a tool's ``kwargs`` when ``root`` is ``"kwargs"``)
        as it is keyed. The value passed in is never changed."""
        if not self:
            return value
        paths = [parts for r, parts in self._paths if r == root]
        if paths:
            value = copy.deepcopy(value)
            for parts in paths:
                value = _drop(value, parts)
        if self._patterns:
            value = _substitute(value, self._patterns)
        if root == "body" and self.normalizer is not None:
            value = self.normalizer(copy.deepcopy(value))
        return value

    # -- in a recording file --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The ``match`` field of a file recorded under these rules (FORMAT.md, "Extensions")."""
        data: dict[str, Any] = {}
        if self.ignore:
            data["ignore"] = list(self.ignore)
        if self.normalize:
            data["normalize"] = dict(self.normalize)
        if self.normalizer_name:
            data["normalizer"] = self.normalizer_name
        return data

    @classmethod
    def from_json(cls, data: Any) -> Rules | None:
        """The rules a file's ``match`` field names; ``None`` when it is absent or malformed.
        A callable normalizer comes back by name only (:attr:`opaque`). Patterns are compiled
        (which is quick), never run: callers run only patterns they trust."""
        if not isinstance(data, Mapping):
            return None
        ignore, normalize, name = data.get("ignore", []), data.get("normalize", {}), data.get("normalizer")
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            return None
        if not isinstance(normalize, Mapping) or not all(isinstance(v, str) for v in normalize.values()):
            return None
        if name is not None and not isinstance(name, str):
            return None
        try:
            return cls(
                ignore=tuple(ignore), normalize=tuple((str(k), v) for k, v in normalize.items()), normalizer_name=name
            )
        except ValueError:
            return None

    def summary(self) -> str:
        """``ignore=['body.user'] normalize={'\\d+': '<n>'}``, or ``strict (no rules)``."""
        if not self:
            return "strict (no rules)"
        parts = []
        if self.ignore:
            parts.append(f"ignore={list(self.ignore)!r}")
        if self.normalize:
            parts.append(f"normalize={dict(self.normalize)!r}")
        if self.normalizer_name:
            parts.append(f"normalize={self.normalizer_name}")
        return " ".join(parts)


STRICT = Rules()


def _drop(value: Any, parts: tuple[str | int, ...]) -> Any:
    """``value`` with the field at ``parts`` left out: a mapping loses the key; a list item
    becomes ``"<ignored>"`` (so the items after it keep their places)."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        if isinstance(head, str) and head in value:
            if rest:
                value[head] = _drop(value[head], rest)
            else:
                del value[head]
        return value
    if isinstance(value, list):
        if head == WILDCARD:
            indexes = range(len(value))
        elif isinstance(head, int) and head < len(value):
            indexes = range(head, head + 1)
        else:
            return value
        for i in indexes:
            value[i] = _drop(value[i], rest) if rest else "<ignored>"
    return value


def _substitute(value: Any, patterns: tuple[tuple[re.Pattern[str], str], ...]) -> Any:
    if isinstance(value, str):
        for pattern, replacement in patterns:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, Mapping):
        return {k: _substitute(v, patterns) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_substitute(v, patterns) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Volatile strings, for the missing-recording hint
# ---------------------------------------------------------------------------------------------

# (what it is, regex, placeholder), most specific first.
VOLATILE: tuple[tuple[str, str, str], ...] = (
    (
        "an ISO timestamp",
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
        "<timestamp>",
    ),
    ("a UUID", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
    ("a date", r"\d{4}-\d{2}-\d{2}", "<date>"),
    ("a time", r"\b\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\b", "<time>"),
    ("a Unix time", r"\b1[5-9]\d{8}(?:\.\d+)?\b", "<unixtime>"),
    ("a hex id", r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", "<hex>"),
)
_VOLATILE_COMPILED = tuple((what, re.compile(rx), rx, ph) for what, rx, ph in VOLATILE)


def mask_volatile(text: str, used: dict[str, tuple[str, str]]) -> str:
    """``text`` with every date, time, UUID and hex id replaced by a placeholder; ``used`` gets
    the kinds found."""
    for what, compiled, rx, placeholder in _VOLATILE_COMPILED:
        text, count = compiled.subn(placeholder, text)
        if count:
            used.setdefault(what, (rx, placeholder))
    return text


def volatile_only(changes: Iterable[Any]) -> dict[str, tuple[str, str]] | None:
    """When every change (``_keys.Change``) is a string in the request body or a tool's kwargs
    whose two sides are equal once dates, times, UUIDs and hex ids are masked: what was found,
    as ``{what: (regex, placeholder)}``. Else ``None``."""
    found: dict[str, tuple[str, str]] = {}
    any_change = False
    for change in changes:
        any_change = True
        if not change.path.startswith(("body.", "body[", "kwargs.")):
            return None
        if not (isinstance(change.old, str) and isinstance(change.new, str)):
            return None
        used: dict[str, tuple[str, str]] = {}
        if mask_volatile(change.old, used) != mask_volatile(change.new, used) or not used:
            return None
        # Only the kinds that tell the two apart are worth a rule.
        for what, (rx, placeholder) in used.items():
            compiled = re.compile(rx)
            if compiled.findall(change.old) != compiled.findall(change.new):
                found.setdefault(what, (rx, placeholder))
        if not found:
            found.update(used)
    return found if any_change and found else None
