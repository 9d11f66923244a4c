"""The whole book builds at the `quick` profile, every chapter page exists, nothing is remote."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_EXT = ROOT / "book" / "_ext"  # the build: scripts beside the book, not in the library
if str(BOOK_EXT) not in sys.path:
    sys.path.insert(0, str(BOOK_EXT))
import bookbuild as book  # noqa: E402

HTML = ROOT / "_build" / "html"
# What a browser fetches on load: src of embedding tags, href of stylesheet/icon/preload links.
SRC = re.compile(
    r"<(?:script|img|iframe|source|video|audio|embed)\b[^>]*?\bsrc\s*=\s*[\"']?([^\"' >]+)", re.I
)
LINK = re.compile(r"<link\b[^>]*>", re.I)
FETCHED_REL = re.compile(r"\brel\s*=\s*[\"']?[^\"'>]*\b(stylesheet|icon|preload|prefetch)", re.I)
HREF = re.compile(r"\bhref\s*=\s*[\"']?([^\"' >]+)", re.I)
REMOTE = re.compile(r"^(?:https?:)?//", re.I)


def fetched_urls(html: str) -> list[str]:
    urls = SRC.findall(html)
    urls += [
        m.group(1)
        for tag in LINK.findall(html)
        if FETCHED_REL.search(tag)
        if (m := HREF.search(tag))
    ]
    return urls


pytestmark = [pytest.mark.book, pytest.mark.slow]


@pytest.fixture(scope="module")
def built() -> Path:
    """Build the book at `quick` (chapters already executed at `quick` are reused)."""
    out = subprocess.run(
        [sys.executable, str(BOOK_EXT / "bookbuild.py"), "build", "--profile", "quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    index = HTML / "index.html"
    assert str(index) in out.stdout  # the command prints where the book is
    return HTML


def test_every_page_exists(built):
    assert (built / "index.html").is_file()
    for chapter in book.book_chapters(ROOT):
        assert (built / "notebooks" / f"{chapter.name}.html").is_file(), chapter.name
    for page in ("intro", "reproducibility", "api", "notation", "references"):
        assert (built / "book" / f"{page}.html").is_file(), page


def test_reproducibility_page_lists_every_chapter_at_quick(built):
    page = (built / "book" / "reproducibility.html").read_text()
    assert "quick" in page
    for chapter in book.book_chapters(ROOT):
        assert f"{chapter.name}.html" in page, chapter.name


def test_no_page_loads_anything_remote(built):
    pages = sorted(built.rglob("*.html"))
    assert pages
    remote = {}
    for page in pages:
        urls = [u for u in fetched_urls(page.read_text(errors="replace")) if REMOTE.match(u)]
        if urls:
            remote[str(page.relative_to(built))] = urls
    assert not remote, remote
    assert fetched_urls('<link rel="stylesheet" href="https://cdn.example/x.css">')  # self-check
    css = [
        p
        for p in (built / "_static").rglob("*.css")
        if re.search(r"url\(\s*[\"']?(https?:)?//", p.read_text(errors="replace"))
    ]
    assert not css, css


def test_mathjax_is_served_from_the_build(built):
    intro = (built / "book" / "intro.html").read_text()
    match = re.search(r"<script[^>]*src=\"([^\"]*mathjax[^\"]*)\"", intro)
    assert match, "intro.html loads no MathJax"
    local = match.group(1).split("?")[0]
    assert not local.startswith(("http:", "https:", "//"))
    assert (built / "book" / local).resolve().is_file()
