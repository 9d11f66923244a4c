"""The import graph of hesslib, read from the source with ``ast`` (module-level and
function-level imports, relative and absolute), and the layering rules it must follow.

Layers: the engine subpackages (core at the bottom, then spectral, rmt, nets, train,
distributed, symbolic) never import a chapter or the plots; a chapter imports the engine only;
only ``hesslib.plot`` imports matplotlib, and only ``hesslib.symbolic`` and ``hesslib.plot``
import sympy or networkx.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "hesslib"

ENGINE = ("core", "spectral", "rmt", "nets", "train", "distributed", "symbolic")
FRONT = ("chapters", "plot")
MATPLOTLIB = ("matplotlib", "seaborn")  # seaborn is matplotlib underneath
SYMBOLIC = ("sympy", "networkx")


@dataclass(frozen=True)
class Import:
    """One imported name: ``source`` imports ``target`` (a hesslib module, or the top-level
    name of an external package) at ``path:line``; ``name`` is the symbol for ``from`` imports.
    """

    source: str
    target: str
    internal: bool
    path: str
    line: int
    name: str | None
    text: str

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(target: str, modules) -> str:
    """The hesslib module an absolute dotted name refers to (the longest existing prefix)."""
    parts = target.split(".")
    for k in range(len(parts), 0, -1):
        name = ".".join(parts[:k])
        if name in modules:
            return name
    return target


@cache
def _imports() -> tuple[Import, ...]:
    modules = _modules()
    out = []
    for mod, path in modules.items():
        rel = path.relative_to(ROOT).as_posix()
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
            text = ast.unparse(node) if isinstance(node, ast.Import | ast.ImportFrom) else ""
            if isinstance(node, ast.Import):
                for alias in node.names:
                    internal = alias.name.split(".")[0] == "hesslib"
                    target = _resolve(alias.name, modules) if internal else alias.name
                    out.append(Import(mod, target, internal, rel, node.lineno, None, text))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    absolute = ".".join(base + ([node.module] if node.module else []))
                else:
                    absolute = node.module or ""
                internal = absolute.split(".")[0] == "hesslib"
                for alias in node.names:
                    if internal and f"{absolute}.{alias.name}" in modules:  # from . import sub
                        target = f"{absolute}.{alias.name}"
                    else:
                        target = _resolve(absolute, modules) if internal else absolute
                    out.append(Import(mod, target, internal, rel, node.lineno, alias.name, text))
    return tuple(out)


def _subpackage(module: str) -> str | None:
    """``core`` for ``hesslib.core.blocks`` (``None`` for top-level modules of hesslib)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    if len(parts) == 2 and not (PKG / parts[1] / "__init__.py").exists():
        return None  # hesslib.cli
    return parts[1]


def _parent(module: str) -> str:
    return module.rpartition(".")[0]


def _graph() -> dict[str, set[str]]:
    """Edges between hesslib modules for the cycle check.

    An import of a module's own package (``from . import name`` resolved to the package's
    ``__init__``, which itself imports the module) is the usual package idiom, not a cycle
    worth flagging, and is left out. Imports of ``hesslib.X`` go to ``hesslib/X/__init__.py``.
    """
    graph: dict[str, set[str]] = {m: set() for m in _modules()}
    for imp in _imports():
        if imp.internal and imp.target != imp.source and imp.target != _parent(imp.source):
            graph[imp.source].add(imp.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path ``a → b → … → a``) per strongly connected component of size > 1."""
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in graph:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    cycles = []
    for comp in sccs:  # a shortest cycle through the component's first module (BFS)
        start = min(comp)
        prev, queue = {start: None}, [start]
        while queue:
            v = queue.pop(0)
            nxt = [w for w in sorted(graph[v]) if w in comp]
            if start in nxt:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                cycles.append([*reversed(path), start])
                break
            for w in nxt:
                if w not in prev:
                    prev[w] = v
                    queue.append(w)
    return cycles


# ------------------------------------------------------------------------------------- the parser
def test_the_graph_sees_every_kind_of_import():
    """Relative (``.``/``..``), ``from . import submodule`` and function-level imports."""
    by = {(i.source, i.target) for i in _imports()}
    assert ("hesslib.nets.zoo", "hesslib.nets.cnn") in by  # from . import cnn, transformer
    assert ("hesslib.spectral.blockwise", "hesslib.core.hessian") in by  # from ..core.hessian
    assert ("hesslib.spectral.blockwise", "hesslib.spectral.files") in by  # inside a function
    assert ("hesslib", "hesslib.core") in by  # from . import core, …
    assert ("hesslib.cli", "hesslib.distributed.cli") in by
    externals = {i.target.split(".")[0] for i in _imports() if not i.internal}
    assert {"torch", "matplotlib", "sympy", "networkx"} <= externals
    assert len(_modules()) > 40


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


# ---------------------------------------------------------------------------------------- the rules
def test_no_import_cycles():
    cycles = _cycles(_graph())
    where = {(i.source, i.target): i.where() for i in _imports()}
    report = [
        " -> ".join(c) + "\n    " + "\n    ".join(where[e] for e in zip(c, c[1:])) for c in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(report)


@pytest.mark.parametrize("sub", ENGINE)
def test_engine_never_imports_chapters_or_plot(sub):
    bad = [
        i.where()
        for i in _imports()
        if i.internal and _subpackage(i.source) == sub and _subpackage(i.target) in FRONT
    ]
    assert not bad, f"hesslib.{sub} imports a chapter or the plots:\n" + "\n".join(bad)


def test_engine_never_imports_the_package_face():
    """``hesslib/__init__.py`` imports the engine; the engine importing it back is a cycle."""
    bad = [
        i.where()
        for i in _imports()
        if i.internal and _subpackage(i.source) in ENGINE and i.target == "hesslib"
    ]
    assert not bad, "\n".join(bad)


def test_core_imports_no_other_subpackage():
    bad = [
        i.where()
        for i in _imports()
        if i.internal and _subpackage(i.source) == "core" and _subpackage(i.target) != "core"
    ]
    assert not bad, "hesslib.core imports outside itself:\n" + "\n".join(bad)


def _chapter_modules() -> list[str]:
    return sorted(m for m in _modules() if m.startswith("hesslib.chapters."))


def test_chapter_modules_are_the_listed_ones():
    listed = ast.literal_eval(
        next(
            node.value
            for node in ast.parse((PKG / "chapters" / "__init__.py").read_text()).body
            if isinstance(node, ast.Assign) and node.targets[0].id == "CHAPTER_MODULES"
        )
    )
    assert _chapter_modules() == sorted(f"hesslib.chapters.{n}" for n in listed)


@pytest.mark.parametrize("chapter", _chapter_modules())
def test_chapter_imports_only_the_engine(chapter):
    bad = [
        i.where()
        for i in _imports()
        if i.internal
        and i.source == chapter
        and i.target != chapter
        and _subpackage(i.target) not in ENGINE
    ]
    assert not bad, f"{chapter} imports outside the engine:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("packages", "allowed"),
    [(MATPLOTLIB, ("plot",)), (SYMBOLIC, ("symbolic", "plot"))],
    ids=["matplotlib", "sympy-networkx"],
)
def test_heavy_dependencies_stay_in_their_subpackage(packages, allowed):
    bad = [
        i.where()
        for i in _imports()
        if not i.internal
        and i.target.split(".")[0] in packages
        and _subpackage(i.source) not in allowed
    ]
    assert not bad, f"{'/'.join(packages)} imported outside {allowed}:\n" + "\n".join(bad)


def test_no_private_name_is_imported_from_another_module():
    bad = [
        i.where()
        for i in _imports()
        if i.name is not None
        and i.name.startswith("_")
        and not (i.name.startswith("__") and i.name.endswith("__"))
        and i.target != i.source
    ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)
