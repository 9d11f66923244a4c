"""Every chapter executes at the `quick` profile, uses the injected profile and draws figures.

The chapters run through `book/_ext/bookbuild.py` (the code path of the book build), into the
build's cache `_build/executed/quick/`: a chapter whose source, parameters and hesslib are unchanged
since its last execution there is not executed again (see tests/test_book_cli.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_EXT = ROOT / "book" / "_ext"  # the book build's modules
if str(BOOK_EXT) not in sys.path:
    sys.path.insert(0, str(BOOK_EXT))
import bookbuild as book  # noqa: E402
import bookchapters  # noqa: E402
import bookmeta as meta  # noqa: E402

CHAPTERS = bookchapters.find_chapters(ROOT)

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


def test_chapter_06_reads_spectra_files_of_the_command_line(tmp_path):
    """The way back from `torchrun -m hesslib.cli slq` into chapter 06 (book/scaling_out.md):
    the chapter loads files of its own models, and refuses a file of another model."""
    import nbformat

    from hesslib.distributed import cli

    files = {m: tmp_path / f"spectra_{m}_quick.pt" for m in ("gpt", "cnn")}
    for model, out in files.items():
        argv = ["slq", "--model", model, "--profile", "quick", "--out", str(out)]
        assert cli.main(argv) == 0
    # a separate execution cache, so that the plain quick execution of chapter 06 stays current
    (tmp_path / "requirements-lock.txt").write_text((ROOT / "requirements-lock.txt").read_text())
    executor = book.Executor(tmp_path, progress=False)
    chapter = next(c for c in CHAPTERS if c.name.startswith("06_"))
    params = {f"{m}_spectra_file": str(p) for m, p in files.items()}
    outcome = executor.execute(chapter, "quick", params)
    assert outcome.status != "failed", outcome.error
    nb = nbformat.read(outcome.path, as_version=4)
    printed = "".join(_text(o) for c in nb.cells for o in c.get("outputs", []))
    assert "GPT: P = " in printed and "CNN: P = " in printed

    swapped = {"gpt_spectra_file": str(files["cnn"])}  # the CNN's file offered as the GPT's
    outcome = executor.execute(chapter, "quick", swapped)
    assert outcome.status == "failed"
    assert "model: file has 'cnn', expected 'gpt'" in outcome.error
