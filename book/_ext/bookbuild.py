"""Build the companion book: execute the chapters, then render the site.

Usage (from any directory; ``make book`` and ``make chapter`` call it)::

    python book/_ext/bookbuild.py build [--profile default|quick|paper] [--force] [--only 01 04]
    python book/_ext/bookbuild.py run 04 --profile paper [-p N 2000 -p seed 1]

``build`` converts every ``notebooks/NN_*.py`` (jupytext percent format) to a notebook,
executes it with papermill in ``notebooks/`` with ``profile`` injected, and keeps the result in
``_build/executed/<profile>/NN_name.ipynb`` next to a content hash (chapter source, injected
parameters, the ``hesslib`` modules the chapter imports, the lock file). A chapter is
re-executed only when that hash changed. The executed notebooks are copied to
``notebooks/NN_name.ipynb`` (git-ignored), which ``jupyter-book build . -W --keep-going``
renders with ``execute_notebooks: "off"``; ``book/reproducibility.md`` is generated from the
executed notebooks' metadata.

``run`` re-executes one chapter (always), e.g. at the ``paper`` profile, and says where the
executed notebook and its figures went.

The build lives beside the book, not in the library: this script is the executing side
(chapters, their parameters, the cache, the command line); ``booksite.py`` is the Sphinx
extension that shapes the rendered site (``_config.yml`` loads it from ``book/_ext``), and
``bookmeta.py`` holds the facts behind the build (content hashes, execution records, the
reproducibility page). The repository root defaults to the one holding this script.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bookmeta as meta
from booksite import describe_weight

from hesslib.core.profiles import PROFILE_NAMES

# The repository this script belongs to (book/_ext/bookbuild.py): the default --root.
ROOT = Path(__file__).resolve().parents[2]
# The hesslib package the kernels import; a chapter's hash covers the modules it imports.
LIB_DIR = Path(importlib.util.find_spec("hesslib").origin).parent
BUILD = "_build"


class BookError(Exception):
    """A user error (bad chapter, profile or parameter) or a failed chapter."""


@dataclass(frozen=True)
class Chapter:
    """One ``notebooks/NN_name.py`` source."""

    number: str  # "01"
    name: str  # "01_observations"
    path: Path


@dataclass(frozen=True)
class Outcome:
    chapter: Chapter
    status: str  # "executed" | "cached" | "failed"
    path: Path | None  # the executed notebook, or the failed one for inspection
    seconds: float = 0.0
    error: str = ""


def find_chapters(root: Path) -> list[Chapter]:
    """Every ``notebooks/NN_*.py`` under ``root``, in order."""
    found = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        found.append(Chapter(path.stem[:2], path.stem, path))
    return found


def toc_files(root: Path) -> list[str] | None:
    """Every ``file`` of ``_toc.yml`` (the root document first); ``None`` without a TOC."""
    import yaml

    path = root / "_toc.yml"
    if not path.is_file():
        return None
    toc = yaml.safe_load(path.read_text()) or {}
    files = [toc["root"]] if "root" in toc else []

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def book_chapters(root: Path) -> list[Chapter]:
    """The chapters the book is built from: those of ``_toc.yml`` (all of them without one).

    A chapter source that is not in the TOC yet (being written) is neither executed nor
    rendered; ``tests/test_book_cli.py`` checks that the TOC lists every chapter.
    """
    chapters = find_chapters(root)
    listed = toc_files(root)
    if listed is None:
        return chapters
    left_out = [ch.name for ch in chapters if f"notebooks/{ch.name}" not in listed]
    if left_out:
        print(f"[book] not in _toc.yml, so not built: {', '.join(left_out)}", flush=True)
    return [ch for ch in chapters if f"notebooks/{ch.name}" in listed]


def resolve_chapter(root: Path, spec: str) -> Chapter:
    """The chapter named by ``spec``: ``"04"``, ``"4"`` or ``"04_static"``."""
    chapters = find_chapters(root)
    key = spec.strip()
    for ch in chapters:
        if key in (ch.number, ch.name, ch.path.name) or (
            key.isdigit() and int(key) == int(ch.number)
        ):
            return ch
    valid = ", ".join(f"{c.number} ({c.name})" for c in chapters) or "none found"
    raise BookError(f"unknown chapter {spec!r}; valid chapters: {valid}")


def check_profile(profile: str) -> str:
    if profile not in PROFILE_NAMES:
        raise BookError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    return profile


def read_notebook(path: Path):
    """The chapter as an nbformat notebook, with the kernel set for papermill."""
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def parameter_defaults(nb) -> dict[str, Any]:
    """Names assigned in the cell tagged ``parameters``, with literal defaults (else the source)."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    defaults: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    defaults[target.id] = ast.literal_eval(value) if value else None
                except (ValueError, TypeError, SyntaxError):
                    defaults[target.id] = ast.unparse(value)
    return defaults


def parse_value(text: str) -> Any:
    """A command-line parameter value: int, float, bool, None, else the string itself."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def check_parameters(ch: Chapter, defaults: dict[str, Any], params: dict[str, Any]) -> None:
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none (no cell tagged 'parameters')"
        raise BookError(f"unknown parameter {unknown[0]!r} for chapter {ch.name}; valid: {valid}")


class Executor:
    """Executes chapters into ``<root>/_build/executed/<profile>/`` with a content-hash cache."""

    def __init__(self, root: Path, *, progress: bool = True):
        self.root = root.resolve()
        self.progress = progress
        self._facts: dict[str, Any] | None = None

    def executed_dir(self, profile: str) -> Path:
        return self.root / BUILD / "executed" / profile

    def target(self, ch: Chapter, profile: str) -> Path:
        return self.executed_dir(profile) / f"{ch.name}.ipynb"

    def digest(self, ch: Chapter, profile: str, params: dict[str, Any]) -> str:
        lock = self.root / "requirements-lock.txt"
        source = ch.path.read_text()
        return meta.content_hash(source, profile, params, lib_dir=LIB_DIR, extra=[lock])

    def is_current(self, ch: Chapter, profile: str, params: dict[str, Any]) -> bool:
        target = self.target(ch, profile)
        stamp = target.with_suffix(".hash")
        if not (target.is_file() and stamp.is_file()):
            return False
        return stamp.read_text().strip() == self.digest(ch, profile, params)

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
        digest = self.digest(ch, profile, params)
        if not force and self.is_current(ch, profile, params):
            return Outcome(ch, "cached", target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{ch.name}.partial.ipynb")
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugpy in kernels
        print(f"[book] executing {ch.name} at profile {profile!r} {params}", flush=True)
        start = time.perf_counter()
        try:
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
        except BaseException:
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
        _finalise(partial, record)
        partial.replace(target)
        target.with_suffix(".hash").write_text(digest + "\n")
        print(f"[book] {ch.name}: executed in {seconds:.1f} s -> {target}", flush=True)
        return Outcome(ch, "executed", target, seconds)

    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = meta.machine_facts(self.root)
        return self._facts

    def _failed(self, ch: Chapter, profile: str, partial: Path, what: str) -> Outcome:
        failed = self.root / BUILD / "failed" / profile / f"{ch.name}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            partial.replace(failed)
        (self.root / "notebooks" / f"{ch.name}.ipynb").unlink(missing_ok=True)  # never publish
        message = f"chapter {ch.name} failed at {what}"
        if failed.exists():
            message += f"\n    (the notebook as far as it ran: {failed})"
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
    text = meta.render_reproducibility([r for r in records if r], profile, others)
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
    (root / BUILD / "site.json").write_text(json.dumps(stamp, indent=1) + "\n")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
