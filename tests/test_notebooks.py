"""Every chapter executes at the `quick` profile, uses the injected profile and draws figures.

The chapters run through `hesslib.book` (the code path of the book build), into the build's
cache `_build/executed/quick/`: a chapter whose source, parameters and hesslib are unchanged
since its last execution there is not executed again (see tests/test_book_cli.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hesslib import _bookmeta as meta
from hesslib import book

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = book.find_chapters(ROOT)

pytestmark = [pytest.mark.book, pytest.mark.slow]


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    return "".join(output.get("data", {}).get("text/plain", ""))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_chapter_executes_at_quick(chapter):
    import nbformat

    outcome = book.Executor(ROOT, progress=False).execute(chapter, "quick")
    assert outcome.status != "failed", outcome.error
    nb = nbformat.read(outcome.path, as_version=4)
    assert meta.read_record(outcome.path)["profile"] == "quick"

    tags = [set(c.metadata.get("tags", [])) for c in nb.cells]
    injected = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert "profile = 'quick'" in nb.cells[injected].source or 'profile = "quick"' in (
        nb.cells[injected].source
    )
    settings = next(c for c in nb.cells[injected + 1 :] if c.cell_type == "code")
    printed = "".join(_text(o) for o in settings.get("outputs", []))
    assert "quick" in printed, f"the settings cell should print the profile; got {printed!r}"

    images = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if {"image/png", "image/svg+xml"} & set(o.get("data", {}))
    ]
    assert images, "a chapter should produce at least one figure"
