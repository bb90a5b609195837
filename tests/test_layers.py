"""The package's layers, read from its own imports: front ends -> hooks -> core, analysis -> core.

Every ``import`` and ``from ... import`` of every module counts, wherever it is written: at module
level, inside a function (a lazy import) or under ``if TYPE_CHECKING:``. A module of the core that
imports a hook or a front end fails, as does a hook that imports a front end, analysis that imports
anything but the core, any import of the package root's entry points from inside a layer, and any
import cycle among the package's modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import notebook_recorder

PACKAGE = Path(notebook_recorder.__file__).resolve().parent
NAME = "notebook_recorder"

# layer -> the layers its modules may import (besides their own)
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "hooks": frozenset({"core"}),
    "analysis": frozenset({"core"}),
    "frontends": frozenset({"hooks", "core", "analysis"}),
    "root": frozenset({"frontends", "hooks", "core", "analysis"}),  # the entry points: __init__, cli, ...
}
MAX_ROOT_MODULES = 8

Graph = Mapping[str, frozenset[str]]


def module_name(path: Path) -> str:
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in ALLOWED:  # notebook_recorder.<layer>.<module>
        return parts[1]
    if len(parts) == 2 and parts[1] in ALLOWED:  # a layer's own __init__
        return parts[1]
    return "root"


def imports(module: str, path: Path, known: Iterable[str]) -> frozenset[str]:
    """The package modules that ``module`` imports anywhere in its source (lazy imports too)."""
    known = set(known)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == NAME)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != NAME:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else source)
    found.discard(module)
    return frozenset(found)


def import_graph() -> dict[str, frozenset[str]]:
    found = modules()
    return {module: imports(module, path, found) for module, path in found.items()}


def violations(graph: Graph) -> list[str]:
    """Every import that runs against the layers."""
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            source_layer, target_layer = layer(module), layer(target)
            if source_layer != target_layer and target_layer not in ALLOWED[source_layer]:
                wrong.append(f"{module} ({source_layer}) imports {target} ({target_layer})")
    return wrong


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_each_layer_is_a_folder_with_modules() -> None:
    layers = {layer(module) for module in modules()}
    assert layers == set(ALLOWED)


def test_the_package_root_holds_only_the_entry_points() -> None:
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_imports_run_one_way() -> None:
    assert violations(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_lazy_and_type_checking_imports_are_read() -> None:
    """The reader sees imports inside functions and ``if TYPE_CHECKING:`` blocks, not only the top."""
    graph = import_graph()
    assert f"{NAME}.frontends.ipython.magics" in graph[NAME]  # inside load_ipython_extension
    assert f"{NAME}.core._store" in graph[f"{NAME}.core._notfound"]  # under TYPE_CHECKING
    assert f"{NAME}.core._hooks" in graph[f"{NAME}.core._session"]  # `from . import _hooks`


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    core, hook, frontend = f"{NAME}.core._session", f"{NAME}.hooks._network", f"{NAME}.frontends.cli.main"
    graph = {core: frozenset({hook}), hook: frozenset({core, frontend}), frontend: frozenset()}
    assert violations(graph) == [
        f"{core} (core) imports {hook} (hooks)",
        f"{hook} (hooks) imports {frontend} (frontends)",
    ]
    assert cycles(graph) == [sorted([core, hook])]
    assert violations({f"{NAME}.analysis._loader": frozenset({hook})}) != []
    assert violations({core: frozenset({NAME})}) != []  # the package root from inside a layer
