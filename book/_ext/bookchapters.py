"""The chapters of the book: their sources, the table of contents, their parameters.

``notebooks/NN_name.py`` (jupytext percent format) are the chapters; ``_toc.yml`` lists those
the book is built from; the cell tagged ``parameters`` declares what ``-p NAME VALUE`` may set.
Used by ``bookbuild.py``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hesslib.core.profiles import PROFILE_NAMES


class BookError(Exception):
    """A user error (bad chapter, profile or parameter) or a failed chapter."""


@dataclass(frozen=True)
class Chapter:
    """One ``notebooks/NN_name.py`` source."""

    number: str  # "01"
    name: str  # "01_observations"
    path: Path


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
