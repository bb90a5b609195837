"""The curated public API, derived from the package itself (as httpx's ``test_exported_members.py``).

Every name in ``__all__`` exists, is public, is ours and documents itself; every public attribute
the package has (once each lazy name is loaded) is in ``__all__``; and the names that type checkers
see (the ``if TYPE_CHECKING:`` imports) are the names loaded lazily, from the same modules.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

import notebook_recorder as nr

INIT = ast.parse(Path(nr.__file__).read_text(encoding="utf-8"))


def _imported_by(statements: list[ast.stmt]) -> dict[str, str]:
    """``{bound name: module}`` for the import statements among ``statements``."""
    names: dict[str, str] = {}
    for node in statements:
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names.update({(a.asname or a.name): module for a in node.names})
        elif isinstance(node, ast.Import):
            names.update({(a.asname or a.name).split(".")[0]: a.name for a in node.names})
    return names


def _type_checking_imports() -> dict[str, str]:
    (block,) = [n for n in INIT.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    return _imported_by(block.body)


def test_all_has_no_duplicates_and_dir_lists_it() -> None:
    assert len(nr.__all__) == len(set(nr.__all__))
    assert dir(nr) == sorted(nr.__all__)


@pytest.mark.parametrize("name", nr.__all__)
def test_every_exported_name_exists_is_ours_and_has_a_docstring(name: str) -> None:
    value = getattr(nr, name)
    if name == "__version__":
        assert isinstance(value, str) and value
        return
    assert not name.startswith("_"), f"nr.{name} is exported but private"
    assert not isinstance(value, types.ModuleType), f"nr.{name} is a module"
    assert value.__module__.startswith("notebook_recorder"), f"nr.{name} comes from {value.__module__}"
    assert inspect.getdoc(value), f"nr.{name} has no docstring"


def test_every_public_attribute_is_exported() -> None:
    for name in nr.__all__:  # load every lazy name, so that the package's namespace is complete
        getattr(nr, name)
    own_imports = _imported_by(INIT.body)  # what __init__ imports for its own use (importlib, Any...)
    public = {
        name
        for name, value in vars(nr).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in own_imports
    }
    assert public == set(nr.__all__) - {"__version__"}


def test_type_checkers_see_what_the_package_gives() -> None:
    # The `if TYPE_CHECKING:` imports name every exported object the package does not define
    # itself, and each names the object that `nr.NAME` returns.
    defined = {n.name for n in INIT.body if isinstance(n, ast.FunctionDef)} | {"__version__"}
    seen = _type_checking_imports()
    assert set(seen) == set(nr.__all__) - defined
    for name, module in seen.items():
        assert getattr(importlib.import_module(module, "notebook_recorder"), name) is getattr(nr, name), name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="does_not_exist"):
        nr.does_not_exist  # noqa: B018


def test_diff_is_public() -> None:
    # `nr.diff` compares two runs (issue 25); its frame's HTML view and verdicts come with it.
    assert "diff" in nr.__all__
    assert nr.diff.__module__ == "notebook_recorder.analysis._diff"
    assert "verdict" in (inspect.getdoc(nr.diff) or "")


def test_serve_is_public_and_loads_its_server_stack_only_when_used() -> None:
    """``nr.serve`` (the loopback endpoint for other processes) is exported; starlette and
    uvicorn are imported by using it, not by importing the package."""
    assert "serve" in nr.__all__
    assert nr.serve.__module__ == "notebook_recorder.frontends.serve._server"
    assert inspect.isclass(nr.serve) and hasattr(nr.serve, "__enter__") and hasattr(nr.serve, "stop")
