"""Build the companion book: execute the chapters, then render the site.

Usage (from any directory; ``make book`` and ``make chapter`` call it)::

    python book/_ext/bookbuild.py build [--profile default|quick|paper] [--force] [--only 01 04]
    python book/_ext/bookbuild.py run 04 --profile paper [-p N 2000 -p seed 1]

``build`` converts every ``notebooks/NN_*.py`` (jupytext percent format) to a notebook,
executes it with papermill in ``notebooks/`` with ``profile`` injected, and keeps the result in
``_build/executed/<profile>/NN_name.ipynb`` next to a content hash (chapter source, injected
parameters, the ``hesslib`` modules the chapter imports, the lock file, and what it reads from
outside them: ``HESSLIB_*`` variables, the device, the data set it resolves — see
``bookcache.py``). A chapter is re-executed when that hash changed or when its cached notebook
is not a complete, error-free execution with a matching record. A failed chapter leaves no
executed notebook and no stale page; a build interrupted by Ctrl-C or SIGTERM removes its
partial files, and the next build removes those of a killed one. The executed notebooks are
copied to
``notebooks/NN_name.ipynb`` (git-ignored), which ``jupyter-book build . -W --keep-going``
renders with ``execute_notebooks: "off"``; ``book/reproducibility.md`` is generated from the
executed notebooks' metadata.

``run`` re-executes one chapter (always), e.g. at the ``paper`` profile, and says where the
executed notebook and its figures went.

The build lives beside the book, not in the library: this script is the executing side (the
cache, the command line); ``bookchapters.py`` finds the chapters and their parameters,
``bookcache.py`` keys and validates the cache, ``bookmeta.py`` holds the facts behind the build
(content hashes, execution records), ``bookpage.py`` renders the reproducibility page, and
``booksite.py`` is the Sphinx extension that shapes the rendered site (``_config.yml`` loads it
from ``book/_ext``). The repository root defaults to the one holding this script; every path
is resolved against it, so the command writes nothing where it is called from.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bookcache as cache
import bookmeta as meta
import bookpage
from bookchapters import (
    BookError,
    Chapter,
    book_chapters,
    check_parameters,
    check_profile,
    parameter_defaults,
    parse_value,
    read_notebook,
    resolve_chapter,
)
from booksite import describe_weight

from hesslib.core.profiles import PROFILE_NAMES

# The repository this script belongs to (book/_ext/bookbuild.py): the default --root.
ROOT = Path(__file__).resolve().parents[2]
# The hesslib package the kernels import; a chapter's hash covers the modules it imports.
LIB_DIR = Path(importlib.util.find_spec("hesslib").origin).parent
BUILD = "_build"


@dataclass(frozen=True)
class Outcome:
    chapter: Chapter
    status: str  # "executed" | "cached" | "failed"
    path: Path | None  # the executed notebook, or the failed one for inspection
    seconds: float = 0.0
    error: str = ""


class Executor:
    """Executes chapters into ``<root>/_build/executed/<profile>/`` with a content-hash cache."""

    def __init__(self, root: Path, *, progress: bool = True):
        self.root = root.resolve()
        self.progress = progress
        self._facts: dict[str, Any] | None = None
        self._inputs: dict[str, dict[str, Any]] = {}

    def executed_dir(self, profile: str) -> Path:
        return self.root / BUILD / "executed" / profile

    def target(self, ch: Chapter, profile: str) -> Path:
        return self.executed_dir(profile) / f"{ch.name}.ipynb"

    def digest(
        self, ch: Chapter, profile: str, params: dict[str, Any], defaults: dict | None = None
    ) -> str:
        """The chapter's cache key: source, parameters, library modules, lock file, and the
        inputs it reads from outside them (:func:`bookcache.chapter_inputs`)."""
        lock = self.root / "requirements-lock.txt"
        source = ch.path.read_text()
        if defaults is None:
            defaults = parameter_defaults(read_notebook(ch.path))
        library = meta.library_files(source, LIB_DIR)
        inputs = cache.chapter_inputs(source, library, LIB_DIR, {**defaults, **params})
        self._inputs[ch.name] = inputs
        return meta.content_hash(
            source, profile, params, lib_dir=LIB_DIR, extra=[lock], inputs=inputs
        )

    def reuse_problem(self, ch: Chapter, profile: str, digest: str) -> str | None:
        """Why the cached execution of ``ch`` cannot be reused (``None``: it can)."""
        target = self.target(ch, profile)
        stamp = target.with_suffix(".hash")
        if not (target.is_file() and stamp.is_file()):
            return "not executed yet"
        if stamp.read_text().strip() != digest:
            return "its inputs changed"
        return cache.check_executed(
            target, digest=digest, chapter=ch.name, profile=profile, key=meta.META_KEY
        )

    def is_current(self, ch: Chapter, profile: str, params: dict[str, Any]) -> bool:
        return self.reuse_problem(ch, profile, self.digest(ch, profile, params)) is None

    def execute(
        self, ch: Chapter, profile: str, overrides: dict[str, Any] | None = None, *, force=False
    ) -> Outcome:
        """Execute ``ch`` unless its cached result is current (or ``force``)."""
        import papermill as pm

        nb = read_notebook(ch.path)
        defaults = parameter_defaults(nb)
        params = {"profile": check_profile(profile), **(overrides or {})}
        check_parameters(ch, defaults, params)
        target = self.target(ch, profile)
        digest = self.digest(ch, profile, params, defaults)
        problem = None if force else self.reuse_problem(ch, profile, digest)
        if not force and problem is None:
            return Outcome(ch, "cached", target)
        if problem == "its inputs changed":
            print(f"[book] {ch.name}: its inputs changed since the cached execution", flush=True)
        elif problem and problem != "not executed yet":
            print(f"[book] {ch.name}: the cached notebook is unusable ({problem})", flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.partial_path(target)
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugpy in kernels
        print(f"[book] executing {ch.name} at profile {profile!r} {params}", flush=True)
        start = time.perf_counter()
        load = os.getloadavg()[0]
        try:
            with cache.temporary_files_in(cache.runtime_dir(self.root)):
                pm.execute_notebook(
                    nb,
                    str(partial),
                    parameters=params,
                    kernel_name="python3",
                    language="python",
                    cwd=str(ch.path.parent),
                    progress_bar=self.progress,
                    log_output=False,
                )
        except pm.PapermillExecutionError as err:
            where = _locate_cell(ch, nb, err.source)
            return self._failed(ch, profile, partial, f"{where}: {err.ename}: {err.evalue}")
        except Exception as err:  # the kernel died, would not start, ...
            return self._failed(ch, profile, partial, f"{type(err).__name__}: {err}")
        except BaseException:  # Ctrl-C, SIGTERM (main() turns it into KeyboardInterrupt)
            partial.unlink(missing_ok=True)
            raise
        seconds = time.perf_counter() - start
        seed = params.get("seed", defaults.get("seed"))
        record = meta.make_record(
            chapter=ch.name,
            profile=profile,
            parameters=params,
            seed=seed,
            seconds=seconds,
            digest=digest,
            facts=self.facts(),
        )
        record["inputs"] = self._inputs[ch.name]
        record["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        try:
            _finalise(partial, record)
            partial.replace(target)
            cache.atomic_write(target.with_suffix(".hash"), digest + "\n")
        finally:
            partial.unlink(missing_ok=True)
        print(f"[book] {ch.name}: executed in {seconds:.1f} s -> {target}", flush=True)
        return Outcome(ch, "executed", target, seconds)

    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = meta.machine_facts(self.root)
        return self._facts

    def _failed(self, ch: Chapter, profile: str, partial: Path, what: str) -> Outcome:
        """Keep the failed notebook for inspection; publish nothing stale of the chapter."""
        failed = self.root / BUILD / "failed" / profile / f"{ch.name}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            partial.replace(failed)
        target = self.target(ch, profile)
        stale = [target, target.with_suffix(".hash"), self.root / "notebooks" / f"{ch.name}.ipynb"]
        stale += cache.stale_pages(self.root, ch.name)  # the page of an earlier build
        for path in stale:
            path.unlink(missing_ok=True)
        message = f"chapter {ch.name} failed at {what}"
        if failed.exists():
            message += f"\n    (the notebook as far as it ran: {failed})"
        pages = [p.relative_to(self.root).as_posix() for p in stale[3:]]
        if pages:
            message += f"\n    (removed its stale rendered page: {', '.join(pages)})"
        return Outcome(ch, "failed", failed if failed.exists() else None, error=message)


def _locate_cell(ch: Chapter, nb, source: str) -> str:
    """'cell N (line L of notebooks/NN_name.py)' for the cell whose source is ``source``."""
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code" and cell.source == source:
            first = next((ln for ln in source.splitlines() if ln.strip()), "")
            text = ch.path.read_text().splitlines()
            line = next((i for i, ln in enumerate(text, 1) if first and ln == first), None)
            suffix = f", line {line}" if line else ""
            return f"cell {number} ({ch.path.parent.name}/{ch.path.name}{suffix})"
    return "the cell papermill injected (parameters)"


def _finalise(path: Path, record: dict[str, Any]) -> None:
    """Store the record in the notebook metadata; fold the injected-parameters cell."""
    nb = json.loads(path.read_text())
    nb["metadata"][meta.META_KEY] = record
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def write_reproducibility(root: Path, chapters: list[Chapter], profile: str) -> Path:
    """Render ``book/reproducibility.md`` from the executed notebooks of ``profile``."""
    executor = Executor(root)
    records = [meta.read_record(executor.target(ch, profile)) for ch in chapters]
    others: dict[str, list[dict[str, Any]]] = {}
    for prof in PROFILE_NAMES:
        recs = [meta.read_record(executor.target(ch, prof)) for ch in chapters]
        if any(recs):
            others[prof] = [r for r in recs if r]
    page = root / "book" / "reproducibility.md"
    page.parent.mkdir(exist_ok=True)
    text = bookpage.render_reproducibility([r for r in records if r], profile, others)
    meta.write_if_changed(page, text)
    return page


def jupyter_book(root: Path) -> int:
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "-W", "--keep-going"]
    print("[book] " + " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=root).returncode


def build(root: Path, profile: str, *, force=False, only=None, html=True) -> int:
    """Execute what is out of date, write the reproducibility page, render the site."""
    root = root.resolve()
    check_profile(profile)
    chapters = book_chapters(root)
    selected = [resolve_chapter(root, s) for s in only] if only else chapters
    executor = Executor(root)
    swept = cache.sweep(root, profile)
    if swept:
        print(f"[book] removed {len(swept)} file(s) a killed build left: {swept[0].name} ...")
    start = time.perf_counter()
    outcomes = [executor.execute(ch, profile, force=force) for ch in selected]
    for o in outcomes:
        if o.status == "cached":
            print(f"[book] {o.chapter.name}: up to date ({o.path.relative_to(root)})")
    failures = [o for o in outcomes if o.status == "failed"]
    for o in failures:
        print(f"[book] FAILED {o.error}", file=sys.stderr)
    if failures:
        return 1
    executed = time.perf_counter() - start
    print(f"[book] execution step: {executed:.1f} s")
    missing = [ch.name for ch in chapters if not executor.target(ch, profile).is_file()]
    if missing and html:
        print(f"[book] no HTML: not executed at {profile!r} yet: {', '.join(missing)}")
    if missing or not html:
        return 0
    for ch in chapters:
        meta.copy_if_changed(executor.target(ch, profile), ch.path.with_suffix(".ipynb"))
    write_reproducibility(root, chapters, profile)
    code = jupyter_book(root)
    index = root / BUILD / "html" / "index.html"
    print(f"[book] html step: {time.perf_counter() - start - executed:.1f} s")
    if code != 0 or not index.is_file():
        print(f"[book] jupyter-book build failed (exit code {code})", file=sys.stderr)
        return code or 1
    print(f"[book] {describe_weight(index.parent)}")
    stamp = {"profile": profile, "chapters": [ch.name for ch in chapters], "built_at": time.time()}
    cache.atomic_write(root / BUILD / "site.json", json.dumps(stamp, indent=1) + "\n")
    print(f"[book] built {index}")
    return 0


def run(root: Path, spec: str, profile: str, params: dict[str, Any]) -> int:
    """Re-execute one chapter; print where the notebook and its figures went."""
    root = root.resolve()
    ch = resolve_chapter(root, spec)
    outcome = Executor(root).execute(ch, profile, params, force=True)
    if outcome.status == "failed":
        print(f"[book] FAILED {outcome.error}", file=sys.stderr)
        return 1
    figures = meta.extract_figures(outcome.path, root / BUILD / "figures" / profile / ch.name)
    print(f"[book] executed notebook: {outcome.path}")
    where = figures[0].parent if figures else "none (no image outputs)"
    print(f"[book] figures ({len(figures)}): {where}")
    print(f"[book] `make book PROFILE={profile}` renders the whole book at this profile")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=meta.COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help=f"repository root (default: {ROOT}, the one holding this script)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute out-of-date chapters and build the HTML book")
    b.add_argument("--profile", default="default", help=f"one of {', '.join(PROFILE_NAMES)}")
    b.add_argument("--force", action="store_true", help="re-execute every chapter")
    b.add_argument("--only", nargs="+", metavar="NN", help="execute only these chapters")
    b.add_argument("--no-html", action="store_true", help="execute only; skip jupyter-book")
    r = sub.add_parser("run", help="re-execute one chapter")
    r.add_argument("chapter", help="chapter number (e.g. 04) or name")
    r.add_argument("--profile", default="default", help=f"one of {', '.join(PROFILE_NAMES)}")
    r.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a parameter of the chapter's parameters cell (repeatable)",
    )
    return parser


def _interrupt(signum, frame):
    """SIGTERM behaves as Ctrl-C: the kernel is shut down and partial files are removed."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        if args.command == "build":
            html = not args.no_html
            return build(args.root, args.profile, force=args.force, only=args.only, html=html)
        params = {name: parse_value(value) for name, value in args.parameter}
        if "profile" in params:
            raise BookError("set the profile with --profile, not -p profile")
        return run(args.root, args.chapter, check_profile(args.profile), params)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("[book] interrupted: partial files removed, the cache is unchanged", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
