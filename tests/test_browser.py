"""The built site in a real browser: headless Debian Chromium driven by Playwright.

Every page of ``_build/html`` is loaded from a local HTTP server on 127.0.0.1. For each page:
every resource it requests answers HTTP 200, nothing is requested from any other host, every
``<img>`` decodes, MathJax has typeset every formula (no raw ``$$`` / ``\\(`` left, no MathJax
error), the console shows no JavaScript error, the sidebar lists every page of ``_toc.yml``,
solution dropdowns open, and chapters offer ``.ipynb`` and ``.py`` downloads. A screenshot of
each page is saved under ``_build/screenshots/``. The negative tests break a copy of the site
(MathJax from a CDN, a missing image, a script error, a chapter missing from the sidebar) and
check that the same audit reports it, so these checks can fail.

The site is the one the book-build test has just built (``tests/test_book_build.py`` runs
first); if ``_build/html`` is missing or older than its sources, the ``quick`` book is built
here. ``HESSLIB_BOOK_ROOT=/path/to/clone`` audits another checkout's build.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BOOK_EXT = Path(__file__).resolve().parents[1] / "book" / "_ext"  # the book build's modules
if str(BOOK_EXT) not in sys.path:
    sys.path.insert(0, str(BOOK_EXT))
from bookbuild import toc_files  # noqa: E402
from booksite import chapter_number, site_weight  # noqa: E402

ROOT = Path(os.environ.get("HESSLIB_BOOK_ROOT", Path(__file__).resolve().parents[1])).resolve()
BUILD = ROOT / "_build"
HTML = BUILD / "html"
SHOTS = BUILD / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Inputs of the site: when one is newer than the last build, the fixture rebuilds.
SOURCES = (
    "_toc.yml",
    "_config.yml",
    "book/*.md",
    "book/references.bib",
    "notebooks/[0-9][0-9]_*.py",
    "hesslib/**/*.py",
    "book/_ext/*.py",
)
# Pages Sphinx generates besides those of the table of contents.
GENERATED = ("index", "genindex", "search")
RAW_TEX = ("$$", "\\(", "\\[", "\\begin{")
MATHJAX_WAIT_MS = 8000
VIEWPORT = {"width": 1280, "height": 860}
SHOT_MAX = int(os.environ.get("HESSLIB_SHOT_MAX", 5000))  # screenshot height cap (px)
MAX_PAGE_BYTES = 6 * 2**20  # everything one page loads
MAX_SITE_BYTES = 40 * 2**20
MAX_IMAGE_BYTES = 2**20 + 2**19
MAX_IMAGE_PIXELS = 2400  # width or height of a figure PNG

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def toc_docs(root: Path = ROOT) -> list[str]:
    """The root document and every file of ``_toc.yml``, in order."""
    return toc_files(root)


# --- the site, a server and a browser --------------------------------------------------------


def site_is_current(root: Path = ROOT) -> tuple[bool, str]:
    stamp = root / "_build" / "site.json"
    html = root / "_build" / "html"
    if not stamp.is_file() or not (html / "index.html").is_file():
        return False, "never built"
    missing = [d for d in toc_docs(root) if not (html / f"{d}.html").is_file()]
    if missing:
        return False, f"pages missing: {missing}"
    built = stamp.stat().st_mtime
    newer = [str(p) for pat in SOURCES for p in root.glob(pat) if p.stat().st_mtime > built]
    return (not newer), (f"sources newer than the build: {newer[:5]}" if newer else "current")


@pytest.fixture(scope="session")
def site() -> Path:
    """``_build/html``, rebuilt at ``quick`` first when it is missing or stale."""
    current, why = site_is_current()
    if not current:
        print(f"[browser] building the quick book ({why})")
        out = subprocess.run(
            [sys.executable, str(BOOK_EXT / "bookbuild.py"), "--root", str(ROOT), "build"]
            + ["--profile", "quick"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    return HTML


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on stderr
        pass


def serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    """A threaded static server for ``directory`` on a free port of 127.0.0.1."""
    handler = functools.partial(_Quiet, directory=str(directory))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


@pytest.fixture(scope="session")
def base_url(site):
    httpd, url = serve(site)
    yield url
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(
            "/usr/bin/chromium is missing: run `bash scripts/setup.sh --browser` (as root) or "
            "install Debian's chromium package"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# --- the audit of one page -------------------------------------------------------------------

_WAIT_MATHJAX = """async (timeoutMs) => {
  if (!document.querySelector('script[src*="mathjax" i]')) return "absent";
  const t0 = performance.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (performance.now() - t0 > timeoutMs) return "never started";
    await new Promise((r) => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  return "typeset";
}"""

_IMAGES = """async () => Promise.all([...document.images].map(async (img) => {
  img.loading = "eager";
  try { await img.decode(); } catch (e) {}
  return {src: img.currentSrc || img.src, width: img.naturalWidth};
}))"""

_MATH = """(patterns) => {
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || el.closest(skip)) continue;
    const text = node.nodeValue;
    if (patterns.some((p) => text.includes(p))) raw.push(text.trim().slice(0, 80));
  }
  const math = [...document.querySelectorAll(".math")];
  return {
    math: math.length,
    containers: document.querySelectorAll("mjx-container").length,
    untypeset: math.filter((m) => !m.querySelector("mjx-container"))
                   .map((m) => m.textContent.trim().slice(0, 80)),
    errors: [...document.querySelectorAll("mjx-merror")]
                .map((e) => e.getAttribute("data-mjx-error") || e.textContent),
    raw: raw,
  };
}"""

_SIDEBAR = """() => [...document.querySelectorAll(".bd-sidebar-primary a[href]")]
  .map((a) => a.href.split("#")[0])"""

_DROPDOWNS = """async () => {
  const out = [];
  for (const d of document.querySelectorAll("details.sd-dropdown")) {
    const summary = d.querySelector("summary");
    summary.scrollIntoView();
    summary.click();
    await new Promise((r) => requestAnimationFrame(() => r()));
    const body = [...d.children].find((c) => c.tagName !== "SUMMARY");
    out.push({title: summary.innerText.trim(), open: d.open,
              height: body ? body.getBoundingClientRect().height : 0});
  }
  return out;
}"""

_DOWNLOADS = """() => [...document.querySelectorAll('a[class*="btn-download"]')]
  .map((a) => ({text: a.innerText.trim(), href: a.href}))"""


@dataclass
class Audit:
    """What one page did in the browser; ``problems`` lists every failed check."""

    url: str
    problems: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)
    foreign: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    bytes: int = 0
    images: int = 0
    math: int = 0
    containers: int = 0
    dropdowns: int = 0
    downloads: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def audit_page(
    browser,
    base: str,
    doc: str,
    toc: list[str],
    shot: Path | None = None,
    mathjax_wait_ms: int = MATHJAX_WAIT_MS,
    view_shot: Path | None = None,
) -> Audit:
    """Load ``base + doc + '.html'`` in a fresh context and run every check on it."""
    url = f"{base}{doc}.html"
    result = Audit(url)
    start = time.perf_counter()
    failed: list[str] = []
    context = browser.new_context(viewport=VIEWPORT)
    # Nothing may leave 127.0.0.1: record any other request and abort it.
    context.route(lambda u: not u.startswith(base), lambda route: route.abort())
    page = context.new_page()

    def on_request(request):
        if not request.url.startswith((base, "data:", "blob:", "about:")):
            result.foreign.append(request.url)

    def on_response(response):
        if response.url.startswith(base):
            result.responses[response.url] = response.status
            result.bytes += int(response.headers.get("content-length", 0))

    page.on("request", on_request)
    page.on("response", on_response)
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("console", lambda m: m.type == "error" and result.console.append(m.text))
    page.on("pageerror", lambda e: result.console.append(f"uncaught: {e}"))
    try:
        page.goto(url, wait_until="load")
        if doc == "index":  # a meta-refresh redirect to the root document
            page.wait_for_url(f"{base}{toc[0]}.html")
            page.wait_for_load_state("load")
        mathjax = page.evaluate(_WAIT_MATHJAX, mathjax_wait_ms)
        images = page.evaluate(_IMAGES)
        math = page.evaluate(_MATH, list(RAW_TEX))
        sidebar = set(page.evaluate(_SIDEBAR))
        downloads = page.evaluate(_DOWNLOADS)
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            height = min(page.evaluate("document.documentElement.scrollHeight"), SHOT_MAX)
            clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height}
            page.screenshot(path=str(shot), full_page=True, clip=clip)
        if view_shot is not None:  # the reader's screen at the first figure (for the README)
            page.evaluate("document.querySelector('figure')?.scrollIntoView({block: 'center'})")
            page.screenshot(path=str(view_shot))
        dropdowns = page.evaluate(_DROPDOWNS)
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    result.seconds = time.perf_counter() - start

    p = result.problems
    p += [f"HTTP {s}: {u}" for u, s in result.responses.items() if s != 200]
    p += [f"request failed: {f}" for f in failed if not f.startswith(tuple(result.foreign))]
    p += [f"request to another host: {u}" for u in result.foreign]
    p += [f"console error: {c}" for c in result.console]
    result.images = len(images)
    p += [f"image not decoded: {i['src']}" for i in images if i["width"] <= 0]
    result.math, result.containers = math["math"], math["containers"]
    if mathjax == "never started":
        p.append("MathJax never started")
    if math["math"] and mathjax == "absent":
        p.append(f"{math['math']} formulas but no MathJax script")
    p += [f"formula not typeset: {t}" for t in math["untypeset"]]
    p += [f"MathJax error: {e}" for e in math["errors"]]
    p += [f"raw TeX in the text: {t!r}" for t in math["raw"]]
    if math["math"] and not math["containers"]:
        p.append("no mjx-container on a page with math")
    expected = {f"{base}{d}.html" for d in toc}
    p += [f"sidebar lacks {u[len(base) :]}" for u in sorted(expected - sidebar)]
    result.dropdowns = len(dropdowns)
    p += [f"dropdown does not open: {d['title']}" for d in dropdowns if not d["open"]]
    p += [f"empty dropdown: {d['title']}" for d in dropdowns if d["open"] and d["height"] <= 0]
    result.downloads = {d["text"]: d["href"] for d in downloads}
    return result


@pytest.fixture(scope="session")
def audits():
    """Audits by document, shared between the per-page test and the summary test."""
    if SHOTS.is_dir():
        shutil.rmtree(SHOTS)  # no screenshot of an earlier run left behind
    return {}


# --- every page ------------------------------------------------------------------------------


PAGES = [*toc_docs(), *GENERATED]


def check(result: Audit, doc: str) -> None:
    assert not result.problems, "\n".join([result.url, *result.problems])
    assert result.bytes <= MAX_PAGE_BYTES, f"{doc} loads {result.bytes / 2**20:.1f} MB"
    if chapter_number(doc) is None:
        return
    assert result.images > 0, "a chapter without a single figure"
    for suffix in (".ipynb", ".py"):
        href = result.downloads.get(suffix)
        assert href and href.endswith(f"_sources/{doc}{suffix}"), (suffix, result.downloads)
        with urllib.request.urlopen(href, timeout=10) as response:
            body = response.read().decode()
            assert response.status == 200
        if suffix == ".py":
            assert body == (ROOT / f"{doc}.py").read_text(), f"{doc}.py differs from the site's"
        else:
            assert json.loads(body)["cells"]


def shot_path(doc: str) -> Path:
    return SHOTS / f"{doc.replace('/', '__')}.png"


@pytest.mark.parametrize("doc", PAGES)
def test_page_in_the_browser(doc, site, base_url, browser, audits):
    first = next((d for d in toc_docs() if chapter_number(d) is not None), None)
    view = SHOTS / "site.png" if doc == first else None
    result = audit_page(browser, base_url, doc, toc_docs(), shot_path(doc), view_shot=view)
    audits[doc] = result
    check(result, doc)
    assert shot_path(doc).stat().st_size > 1000


def test_every_other_page_in_the_browser(site, base_url, browser, audits):
    """Pages not in the table of contents (e.g. the Python module index), and no stale ones."""
    pages = sorted(
        str(p.relative_to(site).with_suffix(""))
        for p in site.rglob("*.html")
        if not p.relative_to(site).parts[0].startswith("_")
    )
    assert set(PAGES) <= set(pages), sorted(set(PAGES) - set(pages))
    others = [doc for doc in pages if doc not in PAGES]
    assert set(others) <= {"py-modindex"}, f"pages that are not in _toc.yml: {others}"
    for doc in others:
        result = audit_page(browser, base_url, doc, toc_docs(), shot_path(doc))
        audits[doc] = result
        check(result, doc)


def test_summary_of_the_audit(audits):
    """Print one line per page (run with -s to see it); saved as _build/screenshots/audit.json."""
    if not set(PAGES) <= set(audits):
        pytest.skip("run with the per-page tests")
    rows = {
        doc: {
            "seconds": round(a.seconds, 2),
            "kB": round(a.bytes / 1024),
            "requests": len(a.responses),
            "images": a.images,
            "formulas": a.math,
            "mjx": a.containers,
            "dropdowns": a.dropdowns,
        }
        for doc, a in audits.items()
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "audit.json").write_text(json.dumps(rows, indent=1) + "\n")
    for doc, row in rows.items():
        print(doc, row)
    assert sum(a.containers for a in audits.values()) > 0


# --- the reader's features, from the HTML ---------------------------------------------------


def test_figures_are_numbered_per_chapter_and_every_numref_resolves(site):
    captions = across = 0
    for doc in toc_docs():
        number = chapter_number(doc)
        html = (site / f"{doc}.html").read_text()
        for label in re.findall(r'<span class="caption-number">([^<]*)</span>', html):
            captions += 1
            if number is not None:
                assert re.fullmatch(rf"Fig\. {number}\.\d+ ", label), (doc, label)
        for href, text in re.findall(
            r'<a class="reference internal" href="([^"]*)"><span class="std std-numref">'
            r"([^<]*)</span>",
            html,
        ):
            target, _, anchor = href.partition("#")
            path = (site / doc).parent / target if target else site / f"{doc}.html"
            assert path.is_file(), (doc, href)
            assert f'id="{anchor}"' in path.read_text(), (doc, href)
            assert re.search(r"\d", text), (doc, text)
            across += bool(target)
    assert captions > 0
    assert across > 0, "no {numref} from one page to a figure of another"


def test_images_are_light_png_or_svg(site):
    from PIL import Image

    images = sorted((site / "_images").iterdir())
    assert images
    for path in images:
        assert path.suffix in (".png", ".svg"), path.name
        assert path.stat().st_size <= MAX_IMAGE_BYTES, (path.name, path.stat().st_size)
        if path.suffix == ".png":
            with Image.open(path) as im:
                assert max(im.size) <= MAX_IMAGE_PIXELS, (path.name, im.size)


def test_site_weight(site):
    total, count, largest = site_weight(site)
    assert total <= MAX_SITE_BYTES, f"{total / 2**20:.1f} MB"
    assert largest.stat().st_size <= 3 * 2**20, largest
    assert not list((site / "_static").rglob("*.map"))


def test_api_page_documents_the_library(site):
    import hesslib

    html = (site / "book" / "api.html").read_text()
    documented = set(re.findall(r'<dt class="sig sig-object py" id="hesslib\.(\w+)"', html))
    for name in ("full_hessian", "closed_form_blocks", "block_stats", "resolve_profile"):
        assert name in documented, name
    public = {n for n in getattr(hesslib, "__all__", []) if callable(getattr(hesslib, n))}
    assert len(documented) >= 0.9 * len(public), sorted(public - documented)


def test_notation_page_has_the_shared_symbols(site):
    source = (ROOT / "book" / "notation.md").read_text()
    for symbol in ("$N$", "$d$", "$C$", "$m$", r"\gamma", "H_{ww}", "H_{vv}", "H_{wv}", "JS}^0"):
        assert symbol in source, symbol


# --- the audit can fail: break a copy of the site ----------------------------------------------


def _first_chapter_image(site: Path) -> tuple[str, str]:
    for doc in toc_docs():
        html = (site / f"{doc}.html").read_text()
        if chapter_number(doc) is not None and (img := re.search(IMG_SRC, html)):
            return doc, img.group(1)
    pytest.fail("no chapter with an image")


def _break(kind: str, copy: Path) -> str:
    """Break ``kind`` in the copy of the site; the document to audit."""
    chapter, image = _first_chapter_image(copy)
    if kind == "missing-image":
        (copy / image).unlink()
        return chapter
    doc = "book/notation"  # a light page with math
    page = copy / f"{doc}.html"
    html = page.read_text()
    if kind == "mathjax-cdn":
        new = re.sub(r'src="[^"]*mathjax/tex-chtml\.js[^"]*"', f'src="{CDN}"', html)
    elif kind == "script-error":
        new = html.replace("</body>", "<script>undefinedFunction();</script></body>", 1)
    elif kind == "sidebar-missing-chapter":
        link = re.escape(f'href="../{chapter}.html"')
        new = re.sub(rf'<li class="toctree-l1[^"]*"><a [^>]*{link}.*?</li>', "", html, flags=re.S)
    else:
        raise ValueError(kind)
    assert new != html, f"{kind}: nothing replaced"
    page.write_text(new)
    return doc


IMG_SRC = re.compile(r'<img[^>]*src="\.\./(_images/[^"]+)"')
CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"
BROKEN = {
    "mathjax-cdn": (f"request to another host: {CDN}", "MathJax never", "raw TeX in the text"),
    "missing-image": ("HTTP 404", "image not decoded"),
    "script-error": ("uncaught: undefinedFunction is not defined",),
    "sidebar-missing-chapter": ("sidebar lacks notebooks/",),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_audit_fails_on_a_broken_copy(kind, site, browser, tmp_path):
    copy = tmp_path / "html"
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns("_sources"))
    doc = _break(kind, copy)
    httpd, url = serve(copy)
    try:
        result = audit_page(browser, url, doc, toc_docs(), mathjax_wait_ms=2000)
    finally:
        httpd.shutdown()
        httpd.server_close()
    report = "\n".join(result.problems)
    for expected in BROKEN[kind]:
        assert expected in report, f"{kind}: {expected!r} not in\n{report}"
