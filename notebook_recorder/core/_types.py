"""Which ``__type__`` names a recording may have built: an allowlist, checked by name first.

A recording is data (DESIGN.md, "Trust"; FORMAT.md, "Types are data"). A ``__type__`` is built
only when it names a class on this allowlist:

- **the SDK's response models**: pydantic models whose own ``__module__`` is under one of the
  packages in :data:`SDKS` (``openai.types``, ``anthropic.types``, their ``pagination``),
  nested types and generic pages included;
- **the SDK's errors**: subclasses of the SDK's base error (``openai.OpenAIError``,
  ``anthropic.AnthropicError``) that the SDK itself defines;
- **builtin exceptions**: ``builtins.ValueError`` and the like (looked up, never imported);
- **the return types that a wrapped tool declares** (``nr.tool`` reads the annotation, or its
  ``result_type=`` argument), with the models and dataclasses nested in them;
- **types the user registers** with :func:`register_types`.

Any other name is never imported: replay reads it as its raw ``__data__``, and ``verify``
reports it. The check is a string check first. Only for an SDK package is anything imported,
and then only modules under that package's model prefixes; what ``getattr`` finds there must
be a model class that the SDK defines, so ``openai.types.os.system`` resolves to nothing.
Results are cached per name: a type is resolved once, not once per chunk.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import importlib
import inspect
import re
import sys
import threading
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KNOWN_FOREIGN_TYPES",
    "SDKS",
    "SdkTypes",
    "allowed_type",
    "is_known_foreign",
    "register_sdk",
    "register_types",
]


@dataclass(frozen=True)
class SdkTypes:
    """One SDK whose own classes may be built from a recording.

    ``models`` are the module prefixes holding its response models (pydantic); ``error`` names
    its base error class as ``<package>.<Name>``, looked up on the SDK's top-level package.
    """

    models: tuple[str, ...]
    error: str

    @property
    def package(self) -> str:
        """The SDK's package (``openai``; ``cerebras.cloud.sdk`` for a nested one)."""
        return self.error.rpartition(".")[0]


# One line per SDK (each with a hook in ``interceptors``). Nothing here imports an SDK until a
# recording names one of its types.
SDKS: tuple[SdkTypes, ...] = (
    SdkTypes(models=("openai.types", "openai.pagination"), error="openai.OpenAIError"),
    SdkTypes(models=("anthropic.types", "anthropic.pagination"), error="anthropic.AnthropicError"),
    SdkTypes(models=("groq.types", "groq.pagination"), error="groq.GroqError"),
    SdkTypes(models=("together.types", "together.pagination"), error="together.TogetherError"),
    SdkTypes(
        models=("llama_stack_client.types", "llama_stack_client.pagination"),
        error="llama_stack_client.LlamaStackClientError",
    ),
)

# Foreign ``__type__`` names seen in real recordings (llama-stack's own tool results, the ollama
# client's responses). They are never imported either, and replay reads them as their raw data,
# as it does any foreign type; ``verify`` lists them as notes rather than problems (``--strict``
# makes them problems). A name ending in ``.*`` covers a whole module.
KNOWN_FOREIGN_TYPES: tuple[str, ...] = (
    "llama_stack.apis.tools.tools.ToolInvocationResult",
    "llama_stack_api.tools.ToolInvocationResult",
    "llama_stack_api.file_processors.models.ProcessFileResponse",
    "ogx_api.tools.ToolInvocationResult",
    "ollama._types.*",
)

# Stainless SDKs detected at run time (``hooks.sdk.stainless_generic``): added only once the
# user's code has imported the SDK and it has the whole Stainless shape, never from a file.
_detected: list[SdkTypes] = []


def register_sdk(package: str, error: str) -> None:
    """Allow the response models and errors of a Stainless SDK detected at run time:
    ``register_sdk("cerebras.cloud.sdk", "CerebrasError")`` allows ``<package>.types``,
    ``<package>.pagination`` and the errors deriving from ``<package>.<error>``. Called by the
    generic SDK hook once the SDK is imported; a recording never adds a package here."""
    sdk = SdkTypes(models=(f"{package}.types", f"{package}.pagination"), error=f"{package}.{error}")
    with _registered_lock:
        if all(known.package != package for known in (*SDKS, *_detected)):
            _detected.append(sdk)
            _builtin_or_sdk.cache_clear()  # a name looked up before may be allowed now


_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})+")

_registered: dict[str, type] = {}
_registered_lock = threading.Lock()


def type_name(cls: type) -> str:
    """``<module>.<qualname>`` of a class, without generic parameters such as ``[Model]``."""
    return f"{cls.__module__}.{cls.__qualname__.split('[', 1)[0]}"


def register_types(*types: type) -> None:
    """Allow recordings to rebuild these classes: ``nr.register_types(MyResult, MyError)``.

    Replay builds a recorded ``__type__`` only from an allowlist (the SDK's models and errors,
    builtin exceptions, the types a wrapped tool declares as its return type); any other type
    comes back as its raw data, and a tool exception of another class as
    :class:`~notebook_recorder.RecordedToolError`. Register the classes of your own that a
    recording should give back: results (pydantic models, dataclasses) and exceptions. A
    registered class is matched by its ``<module>.<qualname>`` name and is never imported.

    Raises ``TypeError`` for anything that is not a class.
    """
    for cls in types:
        if not isinstance(cls, type):
            raise TypeError(
                f"nr.register_types() takes classes (pydantic models, dataclasses, exceptions), "
                f"not {type(cls).__name__} {cls!r}"
            )
    with _registered_lock:
        for cls in types:
            _registered[type_name(cls)] = cls


def declared_types(annotation: Any) -> list[type]:
    """The pydantic models and dataclasses named in a type annotation, nested ones included.

    Walks ``list[Model]``, ``Optional[...]``, unions, ``Iterator[...]``, ``Annotated[...]`` and the
    fields of the models and dataclasses it finds. Unresolvable string annotations are skipped.
    """
    found: dict[type, None] = {}
    _walk(annotation, found, set())
    return list(found)


def _walk(annotation: Any, found: dict[type, None], seen: set[int]) -> None:
    if id(annotation) in seen or annotation is None or isinstance(annotation, str | typing.ForwardRef):
        return
    seen.add(id(annotation))
    for arg in typing.get_args(annotation):
        _walk(arg, found, seen)
    if not isinstance(annotation, type) or annotation in found:
        return
    import pydantic

    if issubclass(annotation, pydantic.BaseModel):
        found[annotation] = None
        for field in annotation.model_fields.values():
            _walk(field.annotation, found, seen)
    elif dataclasses.is_dataclass(annotation):
        found[annotation] = None
        for hint in _hints(annotation):
            _walk(hint, found, seen)


def _hints(cls: type) -> Iterable[Any]:
    try:
        return list(typing.get_type_hints(cls).values())
    except Exception:  # a forward reference that does not resolve: keep what is not a string
        return [f.type for f in dataclasses.fields(cls) if not isinstance(f.type, str)]


def register_declared(annotation: Any) -> list[type]:
    """Allow the models and dataclasses an annotation declares (what ``nr.tool`` reads)."""
    types = declared_types(annotation)
    if types:
        register_types(*types)
    return types


def allowed_type(name: object) -> type | None:
    """The allowlisted class named ``name``, or ``None``. Never imports anything outside an SDK."""
    if not isinstance(name, str):
        return None
    cls = _registered.get(name)
    if cls is not None:
        return cls
    return _builtin_or_sdk(name)


@functools.lru_cache(maxsize=4096)
def _builtin_or_sdk(name: str) -> type | None:
    if not _DOTTED.fullmatch(name) or any(part.startswith("__") for part in name.split(".")):
        return None
    module_name, _, qualname = name.rpartition(".")
    if module_name == "builtins":
        obj = getattr(builtins, qualname, None)
        return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None
    for sdk in (*SDKS, *_detected):
        for prefix in sdk.models:
            if name.startswith(prefix + "."):
                return _sdk_model(name, prefix)
        if name.startswith(sdk.package + "."):
            return _sdk_error(name, sdk)
    return None


def _sdk_model(name: str, prefix: str) -> type | None:
    """A model class under ``prefix``, importing only modules under ``prefix``."""
    module_name, _, qualname = name.rpartition(".")
    parts = [qualname]
    while len(module_name) >= len(prefix) and (module_name == prefix or module_name.startswith(prefix + ".")):
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, outer = module_name.rpartition(".")
            parts.insert(0, outer)
            continue
        obj = _traverse(module, parts)
        if obj is None:
            return None
        import pydantic

        if issubclass(obj, pydantic.BaseModel) and _under(obj.__module__, prefix):
            return obj
        return None
    return None


def _sdk_error(name: str, sdk: SdkTypes) -> type | None:
    """An error class the SDK defines, found on its top-level package or a module it has loaded."""
    module_name, _, qualname = name.rpartition(".")
    try:
        package = importlib.import_module(sdk.package)
    except ImportError:
        return None
    module = package if module_name == sdk.package else sys.modules.get(module_name)
    base = getattr(package, sdk.error.rpartition(".")[2], None)
    if module is None or not isinstance(base, type):
        return None
    obj = _traverse(module, qualname.split("."))
    if obj is not None and issubclass(obj, base) and _under(obj.__module__, sdk.package):
        return obj
    return None


def _traverse(module: Any, parts: list[str]) -> type | None:
    """``module.<parts>``, stepping only through the module and then classes.

    Static lookups only: no module ``__getattr__``, no descriptor, and ``type(obj)`` rather than
    ``isinstance`` (the SDK's lazy module clients answer ``__class__`` by building a client).
    """
    obj: Any = module
    for part in parts:
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            return None
        if not issubclass(type(obj), type):
            return None
    return obj if issubclass(type(obj), type) else None


def _under(module: object, prefix: str) -> bool:
    return isinstance(module, str) and (module == prefix or module.startswith(prefix + "."))


def is_known_foreign(name: str) -> bool:
    """Whether ``name`` is on :data:`KNOWN_FOREIGN_TYPES` (a string check)."""
    for known in KNOWN_FOREIGN_TYPES:
        if known.endswith(".*"):
            if name.startswith(known[:-1]) and "." not in name[len(known) - 1 :]:
                return True
        elif name == known:
            return True
    return False
