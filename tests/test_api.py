"""The package's face: a small curated ``import hesslib`` API, explicit ``__all__`` everywhere,
no star imports, short modules, and no matplotlib/sympy/networkx behind the engine or the CLI.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import hesslib as hl

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "hesslib"
MODULES = sorted(PKG.rglob("*.py"))

MAX_PUBLIC_NAMES = 80
MAX_MODULE_LINES = 400

#: The engine (imported by ``import hesslib`` or on first use, never pulling in the heavy three).
ENGINE = ("core", "spectral", "rmt", "nets", "train", "distributed")
#: Every subpackage: the engine, and symbolic / plot / chapters (imported on first use).
SUBPACKAGES = (*ENGINE, "symbolic", "plot", "chapters")
HEAVY = ("matplotlib", "sympy", "networkx")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _public(names) -> list[str]:
    return [n for n in names if not n.startswith("_")]


# ------------------------------------------------------------------------------- the curated face
def test_at_most_80_public_names():
    exported = set(_public(vars(hl))) | set(hl.__all__)
    assert len(exported) <= MAX_PUBLIC_NAMES, sorted(exported)


def test_all_is_version_subpackages_and_api_groups():
    """``__all__`` = ``__version__``, the subpackages (any order), the API groups' names."""
    grouped = [name for names in hl.API_GROUPS.values() for name in names]
    k = len(SUBPACKAGES)
    assert hl.__all__[0] == "__version__"
    assert sorted(hl.__all__[1 : 1 + k]) == sorted(SUBPACKAGES)
    assert hl.__all__[1 + k :] == grouped
    dupes = [n for n, c in Counter(hl.__all__).items() if c > 1]
    assert not dupes, f"names listed twice in hesslib.__all__ / API_GROUPS: {dupes}"
    for name in hl.__all__:
        assert getattr(hl, name) is not None, name
    for name in SUBPACKAGES:
        assert getattr(hl, name).__name__ == f"hesslib.{name}"


def test_no_public_name_outside_all():
    """Everything public in the namespace is in ``__all__`` (``API_GROUPS`` itself aside): no
    helper module (``importlib``, ``sys`` …) leaks out as ``hl.<name>``."""
    leaked = set(_public(vars(hl))) - set(hl.__all__) - {"API_GROUPS"}
    assert not leaked, f"hesslib/__init__.py leaks non-API names: {sorted(leaked)}"


def test_lazy_subpackages_and_unknown_names():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        hl.not_a_name  # noqa: B018
    assert set(hl.chapters.__all__) == set(hl.chapters.CHAPTER_MODULES)
    with pytest.raises(AttributeError, match="no attribute 'not_a_chapter'"):
        hl.chapters.not_a_chapter  # noqa: B018


# ------------------------------------------------------------------------------ every module's text
@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_star_import(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    stars = [
        f"{_rel(path)}:{node.lineno}: from {'.' * node.level}{node.module or ''} import *"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)
    ]
    assert not stars, stars


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_module_length(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, (
        f"{_rel(path)} has {lines} lines (limit {MAX_MODULE_LINES}); split it"
    )


SUBPACKAGE_INITS = sorted(p for p in PKG.glob("*/__init__.py"))


def _literal_all(path: Path) -> list[str] | None:
    """The ``__all__ = [...]`` of a module as written, or ``None`` if it has none."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:  # e.g. list(CHAPTER_MODULES): explicit, but computed
                return list(importlib.import_module(_module_name(path)).__all__)
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_subpackage_is_covered():
    names = {p.parent.name for p in SUBPACKAGE_INITS}
    assert names == set(SUBPACKAGES)


@pytest.mark.parametrize("path", SUBPACKAGE_INITS, ids=lambda p: p.parent.name)
def test_subpackage_has_explicit_all_that_resolves(path):
    names = _literal_all(path)
    assert names is not None, f"{_rel(path)} has no __all__"
    assert names, f"{_rel(path)}: __all__ is empty"
    dupes = [n for n, k in Counter(names).items() if k > 1]
    assert not dupes, f"{_rel(path)}: listed twice in __all__: {dupes}"
    module = importlib.import_module(_module_name(path))
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{_rel(path)}: __all__ names that do not resolve: {missing}"


# --------------------------------------------------------------- what importing actually pulls in
_PROBE = """
import json, sys
{body}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("HEAVY=" + json.dumps(heavy))
"""

_CLI_HELP = """
import contextlib, io, runpy
sys.argv = ["hesslib.cli", "--help"]
out = io.StringIO()
code = None
with contextlib.redirect_stdout(out):
    try:
        runpy.run_module("hesslib.cli", run_name="__main__")
    except SystemExit as exc:
        code = exc.code
assert code in (0, None), code
assert "usage" in out.getvalue().lower(), out.getvalue()
"""

_ENGINE = "\n".join(
    [f"import hesslib.{name}" for name in ENGINE]
    + ["import hesslib.chapters"]
    + [f"import hesslib.chapters.{name}" for name in hl.chapters.CHAPTER_MODULES]
)

PROBES = {
    "import hesslib.core": "import hesslib.core",
    "import hesslib": "import hesslib",
    "engine and chapter modules": _ENGINE,
    "python -m hesslib.cli --help": _CLI_HELP,
}


@pytest.mark.parametrize("what", list(PROBES))
def test_no_matplotlib_sympy_networkx_behind(what):
    code = _PROBE.format(body=PROBES[what], heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("HEAVY=")][-1]
    heavy = json.loads(line.removeprefix("HEAVY="))
    assert not heavy, f"{what} imports {heavy}"
