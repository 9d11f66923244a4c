"""Facts behind the book build: content hashes, execution records, file helpers.

Used by ``bookbuild.py`` (the command), ``bookpage.py`` (the reproducibility page) and
``booksite.py`` (the Sphinx extension), its neighbours in ``book/_ext/``. An executed chapter
carries a record in its notebook metadata (``metadata["hesslib"]``); ``book/reproducibility.md``
is rendered from those records at build time, so none of its numbers are typed by hand.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

META_KEY = "hesslib"
# Bump when the execution procedure changes in a way that should invalidate every cache.
CACHE_FORMAT = 3
COMMAND = "python book/_ext/bookbuild.py"


def content_hash(
    source: str,
    profile: str,
    parameters: dict[str, Any],
    *,
    lib_dir: Path,
    extra: list[Path],
    inputs: dict[str, Any] | None = None,
) -> str:
    """SHA-256 of everything an executed chapter depends on.

    Args:
        source: the chapter's jupytext source text.
        profile: the profile it is executed at.
        parameters: every parameter papermill injects (``profile`` included).
        lib_dir: the directory of the hesslib package the kernel imports; of its modules,
            those the chapter imports (:func:`library_files`) are hashed.
        extra: further files that matter (the lock file); missing ones are skipped.
        inputs: what else the chapter reads (environment, device, data sources: see
            ``bookcache.chapter_inputs``), as JSON-able values.
    """
    h = hashlib.sha256()
    head = {"format": CACHE_FORMAT, "profile": profile, "parameters": parameters}
    if inputs:
        head["inputs"] = inputs
    h.update(json.dumps(head, sort_keys=True, default=repr).encode())
    h.update(b"\0source\0" + source.encode())
    for path in library_files(source, lib_dir):
        name = path.relative_to(lib_dir.parent).as_posix()
        h.update(b"\0" + name.encode() + b"\0" + path.read_bytes())
    for path in [p for p in extra if p.is_file()]:
        h.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


# --- which library modules a chapter imports ----------------------------------------------------


def library_files(source: str, lib_dir: Path) -> list[Path]:
    """The files of the package ``lib_dir`` (``hesslib/``) that running ``source`` imports.

    Found statically, as the transitive closure of the imports of the chapter and then of each
    library module reached, at any depth (imports inside functions too; relative ones
    resolved; a module's parent packages, whose ``__init__.py`` runs first, included). A
    subpackage imported on first attribute access (``hl.plot``, ``hl.chapters.static_force``:
    ``hesslib/__init__.py``'s ``__getattr__``) counts where the code names it: an attribute
    chain ``alias.a.b`` on an imported module (or on a name assigned one, ``ch =
    hl.chapters``), a ``from hesslib.chapters import name`` or an
    ``importlib.import_module("hesslib.x")`` with a literal name. ``from m import *`` counts
    every direct submodule of ``m``. A source that does not parse counts every module.
    """
    package = lib_dir.name
    try:
        todo = list(_imported_names(ast.parse(source), "", is_package=False))
    except SyntaxError:
        return sorted(lib_dir.rglob("*.py"))
    reached: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name.endswith(".*"):
            todo += _submodules(lib_dir, name[:-2])
            continue
        if name in reached or name.split(".")[0] != package:
            continue
        path = _module_file(lib_dir, name)
        if path is None:  # a function, class or constant of the package, or no such module
            continue
        reached[name] = path
        todo += [name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)]  # parents
        try:
            tree = ast.parse(path.read_bytes())
        except SyntaxError:  # the chapter fails on it; its bytes are hashed all the same
            continue
        todo += _imported_names(tree, name, is_package=path.name == "__init__.py")
    return sorted(set(reached.values()))


def _module_file(lib_dir: Path, name: str) -> Path | None:
    """The file of the module ``name`` (``hesslib.core.blocks``) in the package ``lib_dir``."""
    parts = name.split(".")
    if parts[0] != lib_dir.name or not all(p.isidentifier() for p in parts):
        return None
    base = lib_dir.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    module = base.parent / f"{base.name}.py"
    return module if len(parts) > 1 and module.is_file() else None


def _submodules(lib_dir: Path, name: str) -> list[str]:
    """The direct submodules and subpackages of the package ``name``."""
    init = _module_file(lib_dir, name)
    if init is None or init.name != "__init__.py":
        return []
    found = [name]
    for path in sorted(init.parent.iterdir()):
        if path.suffix == ".py" and path.name != "__init__.py":
            found.append(f"{name}.{path.stem}")
        elif (path / "__init__.py").is_file():
            found.append(f"{name}.{path.name}")
    return found


def _imported_names(tree: ast.AST, module: str, *, is_package: bool) -> list[str]:
    """Dotted names the code of ``module`` may import: modules, their attributes (which may
    be submodules), ``"m.*"`` for ``from m import *``. ``module`` is ``""`` for a chapter."""
    names: list[str] = []
    bound: dict[str, str] = {}  # a local name -> the module (or attribute) it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.append(alias.name)
                top = alias.name.split(".")[0]
                bound[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            if base is None:
                continue
            names.append(base)
            for alias in node.names:
                if alias.name == "*":
                    names.append(f"{base}.*")
                else:
                    names.append(f"{base}.{alias.name}")
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.append(arg.value)
    for _ in range(2):  # ``ch = hl.chapters``: the name is bound to a module too
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name | ast.Attribute):
                chain = _attribute_chain(node.value)
                if chain and chain[0] in bound:
                    value = ".".join([bound[chain[0]], *chain[1:]])
                    names.append(value)
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            bound.setdefault(target.id, value)
    for node in ast.walk(tree):
        chain = _attribute_chain(node) if isinstance(node, ast.Attribute) else None
        if chain and chain[0] in bound:
            name = bound[chain[0]]
            for part in chain[1:]:
                name += "." + part
                names.append(name)
    return names


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    """The absolute module of ``from <node.module> import ...`` written in ``module``."""
    if node.level == 0:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    if not module or node.level - 1 >= len(package):
        return None  # a relative import outside a package: not the library's
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


def _attribute_chain(node: ast.expr) -> list[str] | None:
    """``["hl", "plot", "heatmap"]`` for ``hl.plot.heatmap``; ``None`` unless a name starts it."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def git_commit(root: Path) -> str:
    """``HEAD``'s commit (``+dirty`` when the tree has changes), or ``"unknown"``."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain")
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(root: Path) -> dict[str, Any]:
    """Device, versions and commit, measured in this process (the kernel's machine)."""
    from hesslib.core.device import device_name

    return {
        "device": device_name(),
        "torch": _version("torch"),
        "hesslib": _version("hesslib"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "git_commit": git_commit(root),
        "executable": sys.executable,
    }


def make_record(
    *,
    chapter: str,
    profile: str,
    parameters: dict[str, Any],
    seed: Any,
    seconds: float,
    digest: str,
    facts: dict[str, Any],
) -> dict[str, Any]:
    """The metadata stored in ``nb.metadata["hesslib"]`` of an executed chapter."""
    return {
        "chapter": chapter,
        "profile": profile,
        "parameters": parameters,
        "seed": seed,
        "wall_seconds": round(seconds, 2),
        "executed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "content_hash": digest,
        **facts,
    }


def read_record(path: Path) -> dict[str, Any] | None:
    """The record of an executed notebook, or ``None`` when it has none."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return nb.get("metadata", {}).get(META_KEY)


def extract_figures(notebook: Path, out_dir: Path) -> list[Path]:
    """Write the PNG/SVG outputs of an executed notebook to ``out_dir``; return their paths."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    written = []
    nb = json.loads(notebook.read_text())
    for index, cell in enumerate(nb["cells"], start=1):
        images = [o["data"] for o in cell.get("outputs", []) if "data" in o]
        for k, data in enumerate(d for d in images if "image/png" in d or "image/svg+xml" in d):
            out_dir.mkdir(parents=True, exist_ok=True)
            if "image/png" in data:
                path = out_dir / f"cell{index:02d}_{k}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
            else:
                path = out_dir / f"cell{index:02d}_{k}.svg"
                svg = data["image/svg+xml"]
                path.write_text(svg if isinstance(svg, str) else "".join(svg))
            written.append(path)
    return written


def copy_if_changed(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` unless ``dst`` holds the same bytes (its mtime then stays)."""
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it holds that text already (through a temporary
    file, so a killed build never leaves it truncated)."""
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(text)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
