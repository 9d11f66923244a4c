"""The execution cache of the book build: what a key covers beyond the sources, whether a
cached notebook may be reused, and the files a killed build leaves behind.

Used by ``bookbuild.py``. A chapter's key (``bookmeta.content_hash``) covers its source, its
parameters, the library modules it imports and the lock file; :func:`chapter_inputs` adds what
the chapter reads from outside them — the ``HESSLIB_*`` environment variables, the kind of
device, and the data it resolves (for a chapter that loads CIFAR-100: the archive's checksum,
or ``stand-in``). :func:`check_executed` refuses a cached notebook that would not render the
chapter as executed (truncated, another record, unfinished or failed cells), so it is executed
again instead of breaking the site. Files written during an execution (papermill's partial
notebook, the kernel's connection file, temporary JSON) carry the writer's process id, so that
:func:`sweep` removes those of a killed build and spares those of one still running.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Files a killed execution leaves in an executed/<profile>/ folder: papermill's output
#: (:func:`partial_path`) and the temporary files of :func:`atomic_write`.
PARTIAL_GLOBS = (".*.partial.ipynb", ".*.tmp.json")


def _cifar_source(params: dict[str, Any]) -> str:
    """The CIFAR-100 data a chapter calling ``hl.nets.cifar100(root=cifar_root,
    download=download)`` resolves, by checksum (``hesslib.nets.cifar_files``)."""
    from hesslib.nets.cifar_files import cifar100_source

    try:
        return cifar100_source(params.get("cifar_root"), download=params.get("download"))
    except OSError as err:  # HESSLIB_CIFAR100 names nothing: the chapter will fail on it
        return f"unavailable ({err})"


#: Data a chapter may read, keyed by the library function that reads it: a chapter whose
#: source (or a library module it reaches, the function's own module aside) calls it gets the
#: source in its key, computed from its parameters without loading any data.
DATA_SOURCES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "cifar100": ("nets/cifar", _cifar_source),
}


def chapter_inputs(
    source: str, library: list[Path], lib_dir: Path, params: dict[str, Any]
) -> dict[str, Any]:
    """What a chapter's output depends on besides its source, parameters and library code.

    Args:
        source: the chapter's source.
        library: the library files the chapter imports (``bookmeta.library_files``).
        lib_dir: the package directory they belong to.
        params: the chapter's parameters: its defaults updated with the injected ones.

    Returns:
        ``{"env": {HESSLIB_*: value}, "device": "cuda"|"cpu", "data": {name: source}}``.
    """
    data = {}
    for name, (home, resolve) in DATA_SOURCES.items():
        call = re.compile(rf"\b{name}\(")
        callers = [p for p in library if not p.relative_to(lib_dir).as_posix().startswith(home)]
        if call.search(source) or any(call.search(p.read_text()) for p in callers):
            data[name] = resolve(params)
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("HESSLIB_")}
    return {"env": env, "device": _device_kind(), "data": data}


def _device_kind() -> str:
    """``"cuda"`` when the kernel would see a GPU (the chapters' default device), else ``"cpu"``."""
    forced = os.environ.get("HESSLIB_DEVICE")
    if forced:
        return forced
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_executed(path: Path, *, digest: str, chapter: str, profile: str, key: str) -> str | None:
    """Why the executed notebook ``path`` may not be reused, or ``None`` when it may.

    It must parse as a valid notebook, carry the record (``metadata[key]``) of this chapter,
    profile and content hash, and hold a completed execution: every non-empty code cell
    executed, no error output, no exception recorded by papermill.
    """
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # NotJSONError, ValidationError, OSError, UnicodeDecodeError ...
        return f"not a valid notebook ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    record = nb.metadata.get(key) or {}
    want = {"chapter": chapter, "profile": profile, "content_hash": digest}
    wrong = [k for k, v in want.items() if record.get(k) != v]
    if wrong:
        return f"its record does not match ({', '.join(wrong)})"
    if nb.metadata.get("papermill", {}).get("exception"):
        return "papermill recorded an exception"
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is None:
            return f"cell {number} was not executed"
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return f"cell {number} has an error output"
    return None


def runtime_dir(root: Path) -> Path:
    """This process's folder for an execution's temporary files (the kernel's connection file
    among them): ``_build/runtime/<pid>``."""
    return root / "_build" / "runtime" / str(os.getpid())


def partial_path(target: Path) -> Path:
    """Where papermill writes ``target`` while it runs: ``.<name>.<pid>.partial.ipynb``."""
    return target.with_name(f".{target.stem}.{os.getpid()}.partial.ipynb")


@contextmanager
def temporary_files_in(directory: Path):
    """Send this process's temporary files (``tempfile``) to ``directory`` for the block, and
    remove the folder at its end, even when it is interrupted.

    jupyter_client writes each kernel's connection file with ``tempfile.mkstemp``; a build
    killed with SIGKILL cannot remove it, so it goes where :func:`sweep` finds it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield directory
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but belongs to someone else
        return True
    return True


_OWNER = re.compile(r"\.(\d+)\.(?:partial\.ipynb|\d+\.tmp\.json)$")


def sweep(root: Path, profile: str) -> list[Path]:
    """Delete what killed executions left behind: partial notebooks and temporary JSON files
    in ``_build/executed/<profile>/``, temporary files in ``_build/runtime/``.

    Every such file names the process that wrote it; those of a process still running (a
    concurrent ``run`` of another chapter) are left alone.
    """
    executed = root / "_build" / "executed" / profile
    removed = []
    for path in [p for pattern in PARTIAL_GLOBS for p in executed.glob(pattern)]:
        owner = _OWNER.search(path.name)
        if owner is None or not _alive(int(owner.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    runtime = root / "_build" / "runtime"
    for path in sorted(runtime.iterdir()) if runtime.is_dir() else []:
        if path.name.isdigit() and _alive(int(path.name)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def stale_pages(root: Path, chapter: str) -> list[Path]:
    """The rendered files of ``chapter`` in ``_build/html`` (its page and its sources)."""
    html = root / "_build" / "html"
    found = [html / "notebooks" / f"{chapter}.html"]
    found += sorted((html / "_sources" / "notebooks").glob(f"{chapter}.*"))
    return [p for p in found if p.is_file()]


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a kill never truncates it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp.json")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
