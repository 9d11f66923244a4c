"""The built site in a real browser: headless Debian Chromium driven by Playwright.

Every page of ``_build/html`` is loaded from a local HTTP server on 127.0.0.1. For each page:
every resource it requests answers HTTP 200, nothing is requested from any other host, every
``<img>`` decodes, MathJax has typeset every formula (no raw ``$$`` / ``\\(`` left, no MathJax
error), the console shows no JavaScript error, the sidebar lists every page of ``_toc.yml``,
solution dropdowns open, and chapters offer ``.ipynb`` and ``.py`` downloads. A screenshot of
each page is saved under ``_build/screenshots/``.

The reader's layout (issue 17), checked on every page by ``test_page_layout_in_the_browser``:

- at 1280x900, with every dropdown and folded cell opened, no code block (a code cell's input,
  any ``.highlight pre``) and no output (``div.cell_output pre``, an output's table) is wider
  than its box: a block is *wider than its box* when ``scrollWidth > clientWidth + 1`` (the
  reader would scroll it sideways, or it is cut), or when it sticks out of the text column
  (a table wider than its cell's output box, anything past ``article.bd-article``'s content
  box). ``CODE_COLUMN`` is how many characters of the code font such a box holds;
- no display equation (``mjx-container[display="true"]``) runs past the text column or is cut
  by a box that hides overflow: a wide one may scroll inside its own box (the theme's CSS and
  ``book/_static/hesslib.css`` make it so);
- no rendered code cell calls ``glue(`` (bookkeeping goes in ``remove-cell`` cells; a folded
  ``hide-input`` cell still puts a "Show code cell source" toggle on the page);
- every exercise's checking output sits in a fold: a cell tagged ``solution`` (class
  ``tag_solution``) and any code cell of a section headed "Exercise(s)" has each non-empty
  ``div.cell_output`` inside a ``<details>`` element (a ``{dropdown}``, or the fold MyST-NB
  makes for the tags ``hide-cell`` / ``hide-output``), or no output (``remove-output``);
- at 390x844 the page as a whole does not scroll sideways
  (``document.documentElement.scrollWidth <= innerWidth + 1``); a code box or table may
  scroll inside itself.

The negative tests break a copy of the site (MathJax from a CDN, a missing image, a script
error, a chapter missing from the sidebar, an over-long code line, a visible ``glue(`` cell, a
solution's output outside its dropdown, an equation let run past the column) and check that the
same audit reports it, so these checks can fail.

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
from bookchapters import toc_files  # noqa: E402
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
    "book/_static/*",
    "notebooks/[0-9][0-9]_*.py",
    "hesslib/**/*.py",
    "book/_ext/*.py",
)
# Pages Sphinx generates besides those of the table of contents.
GENERATED = ("index", "genindex", "search")
RAW_TEX = ("$$", "\\(", "\\[", "\\begin{")
MATHJAX_WAIT_MS = 8000
VIEWPORT = {"width": 1280, "height": 860}
LAPTOP = {"width": 1280, "height": 900}  # the layout checks (issue 17)
PHONE = {"width": 390, "height": 844}
# Characters of the code font that a code cell's box holds at LAPTOP (DejaVu Sans Mono 14 px
# in Debian's Chromium: 8.43 px a character, a 684 px box less 2 x 16 px padding): the width
# the notebooks' code is formatted to. test_code_column_width measures it.
CODE_COLUMN = 77
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

# What a reader should not see, from the page as it loads (nothing opened yet): code cells that
# call glue( and exercise answers printed outside a fold.
_BOOKKEEPING = r"""() => {
  const firstLine = (el, re) => {
    const lines = el.textContent.split("\n").map((l) => l.trim()).filter(Boolean);
    return ((re && lines.find((l) => re.test(l))) || lines[0] || "").slice(0, 100);
  };
  const GLUE = /(^|[^\w])glue\(/;
  const glue = [];
  for (const cell of document.querySelectorAll("div.cell")) {
    const src = cell.querySelector("div.cell_input pre");
    if (!src || !GLUE.test(src.textContent)) continue;
    const folded = !!src.closest("details");
    glue.push((folded ? "(folded) " : "") + firstLine(src, GLUE));
  }
  const title = (sec) => {
    const h = [...sec.children].find((c) => /^H[1-6]$/.test(c.tagName));
    return h ? h.textContent.replace(/#$/, "").trim() : "";
  };
  const exercise = (sec) => /\bexercises?\b/i.test(title(sec));
  const answers = [];
  let solutions = 0, checked = 0;
  for (const cell of document.querySelectorAll("div.cell")) {
    const tagged = cell.classList.contains("tag_solution");
    const sec = cell.closest("section");
    if (!tagged && !(sec && exercise(sec))) continue;
    checked += 1;
    solutions += tagged;
    for (const out of cell.querySelectorAll("div.cell_output")) {
      const empty = !out.textContent.trim() && !out.querySelector("img, svg, table");
      if (empty || out.closest("details")) continue;
      const why = tagged ? "tag solution" : `section "${title(sec)}"`;
      answers.push(`${why}: ${firstLine(out)}`);
    }
  }
  return {cells: document.querySelectorAll("div.cell").length, glue, answers, solutions, checked};
}"""

# With every <details> open, at LAPTOP: code blocks, outputs and display equations that are
# wider than their box or run past the text column.
_WIDTHS = r"""async () => {
  for (const d of document.querySelectorAll("details")) d.open = true;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const article = document.querySelector("article.bd-article") || document.body;
  const ac = getComputedStyle(article), ar = article.getBoundingClientRect();
  const left = ar.left + parseFloat(ac.paddingLeft), right = ar.right - parseFloat(ac.paddingRight);
  const shown = (el) => el.getClientRects().length > 0 && el.clientWidth > 0;
  const past = (r) => r.left < left - 1 || r.right > right + 1;
  const charWidth = (pre) => {
    const probe = document.createElement("span");
    probe.textContent = "0".repeat(100);
    pre.appendChild(probe);
    const w = probe.getBoundingClientRect().width / 100;
    probe.remove();
    return w;
  };
  const longest = (el) =>
    el.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
  const block = (el, box) => {
    const r = el.getBoundingClientRect();
    const wide = el.scrollWidth > el.clientWidth + 1 || (box && r.width > box.clientWidth + 1);
    return wide || past(r);
  };
  const describe = (pre) => {
    const cs = getComputedStyle(pre);
    const inner = pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const line = longest(pre);
    return {fits: Math.floor(inner / charWidth(pre) + 0.01), chars: line.length,
            line: line.trim().slice(0, 70)};
  };
  const code = {total: 0, wide: []}, outputs = {total: 0, wide: []};
  const eqs = {total: 0, wide: [], scrolling: 0};
  const inputs = [...document.querySelectorAll("div.cell_input pre, .highlight pre")]
    .filter((pre) => !pre.closest("div.cell_output"));
  for (const pre of new Set(inputs)) {
    if (!shown(pre)) continue;
    code.total += 1;
    if (block(pre)) code.wide.push(describe(pre));
  }
  for (const el of document.querySelectorAll("div.cell_output pre, div.cell_output table")) {
    if (!shown(el)) continue;
    outputs.total += 1;
    if (el.tagName === "PRE") {
      if (block(el)) outputs.wide.push(describe(el));
    } else if (block(el, el.closest("div.cell_output"))) {
      const w = Math.round(el.getBoundingClientRect().width);
      outputs.wide.push({table: w, box: el.closest("div.cell_output").clientWidth,
                         line: el.textContent.trim().slice(0, 70)});
    }
  }
  const tex = (c) => {
    try {
      const item = MathJax.startup.document.getMathItemsWithin(c)[0];
      return item.math.trim().replace(/\s+/g, " ").slice(0, 70);
    } catch (e) { return c.textContent.slice(0, 70); }
  };
  // An equation fails when its typeset content (mjx-math) extends past the text column and
  // the nearest box that does not let it overflow (itself first) is not a box inside the
  // column that scrolls: it is then cut (overflow hidden) or runs past the column.
  for (const c of document.querySelectorAll('mjx-container[display="true"]')) {
    if (!shown(c)) continue;
    eqs.total += 1;
    const r = (c.querySelector("mjx-math") || c).getBoundingClientRect();
    const exceeds = (box) => r.left < box.left - 1 || r.right > box.right + 1;
    let why = past(r) ? "runs past the text column" : null;
    for (let a = c; a && a !== article; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === "visible") continue;
      const box = a.getBoundingClientRect();
      if (o !== "auto" && o !== "scroll") why = exceeds(box) ? "is cut" : why;
      else if (!past(box)) {
        eqs.scrolling += exceeds(box);
        why = null;
      }
      break;
    }
    if (why) eqs.wide.push({why, width: Math.round(r.width), column: Math.round(right - left),
                            tex: tex(c)});
  }
  return {code, outputs, eqs, column: Math.round(right - left)};
}"""

# At PHONE: does the page as a whole scroll sideways, and what sticks out.
_PAGE_SCROLL = r"""async () => {
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const width = window.innerWidth, scroll = document.documentElement.scrollWidth;
  const culprits = [];  // the outermost elements past the right edge, for the message
  if (scroll > width + 1) {
    const contained = (el) => {  // inside a box that scrolls or clips, or a fixed one
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const cs = getComputedStyle(a);
        if (cs.overflowX !== "visible" || cs.position === "fixed") return true;
      }
      return false;
    };
    const sticksOut = (el) => el.getBoundingClientRect().right > width + 1
      && getComputedStyle(el).position !== "fixed" && !contained(el);
    for (const el of document.body.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || !sticksOut(el)) continue;
      if (el.parentElement !== document.body && sticksOut(el.parentElement)) continue;
      const cls = [...el.classList].slice(0, 3).join(".");
      const name = el.tagName.toLowerCase() + (cls ? "." + cls : "");
      culprits.push(`${name} to ${Math.round(r.right)}px`);
      if (culprits.length >= 4) break;
    }
  }
  return {width, scroll, culprits};
}"""


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
    # the reader's layout (issue 17): its failed checks, and "failed of checked" per kind
    layout: list[str] = field(default_factory=list)
    counts: dict[str, str] = field(default_factory=dict)


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
        bookkeeping = page.evaluate(_BOOKKEEPING)
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
        page.set_viewport_size(LAPTOP)
        widths = page.evaluate(_WIDTHS)
        page.set_viewport_size(PHONE)
        phone = page.evaluate(_PAGE_SCROLL)
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
    layout_checks(result, bookkeeping, widths, phone)
    return result


def layout_checks(result: Audit, bookkeeping: dict, widths: dict, phone: dict) -> None:
    """The reader's layout (issue 17) into ``result.layout`` and ``result.counts``."""
    lay, w = result.layout, widths
    for c in w["code"]["wide"]:
        lay.append(
            f"code block wider than its box ({c['chars']} characters, the box holds "
            f"{c['fits']}): {c['line']}"
        )
    for o in w["outputs"]["wide"]:
        if "table" in o:
            lay.append(f"output table wider than its box ({o['table']} > {o['box']} px)")
        else:
            lay.append(
                f"output wider than its box ({o['chars']} characters, the box holds "
                f"{o['fits']}): {o['line']}"
            )
    for e in w["eqs"]["wide"]:
        lay.append(
            f"display equation {e['why']} ({e['width']} px, the column {e['column']}): {e['tex']}"
        )
    lay += [f"code cell calls glue(: {g}" for g in bookkeeping["glue"]]
    lay += [f"solution output outside a dropdown ({a})" for a in bookkeeping["answers"]]
    if phone["scroll"] > phone["width"] + 1:
        lay.append(
            f"page scrolls sideways at {phone['width']} px (scrollWidth {phone['scroll']}): "
            + ", ".join(phone["culprits"])
        )
    result.counts = {
        "code wider than box": f"{len(w['code']['wide'])} of {w['code']['total']}",
        "outputs wider than box": f"{len(w['outputs']['wide'])} of {w['outputs']['total']}",
        "equations past column": f"{len(w['eqs']['wide'])} of {w['eqs']['total']}",
        "equations scrolling in their box": str(w["eqs"]["scrolling"]),
        "glue cells": f"{len(bookkeeping['glue'])} of {bookkeeping['cells']}",
        "answers outside a fold": f"{len(bookkeeping['answers'])} of {bookkeeping['checked']}",
        "cells tagged solution": str(bookkeeping["solutions"]),
        "phone scrollWidth": f"{phone['scroll']} of {phone['width']}",
        "text column px": str(w["column"]),
    }


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


# Every page of the site, the chapters included, passes the layout checks (issue 17).
LAYOUT_PAGES = [*PAGES, "py-modindex"]


@pytest.mark.parametrize("doc", LAYOUT_PAGES)
def test_page_layout_in_the_browser(doc, site, base_url, browser, audits):
    """Issue 17: nothing wider than its box, no glue( on the page, answers folded, no page
    that scrolls sideways on a phone (see the module's docstring)."""
    if not (site / f"{doc}.html").is_file():
        pytest.skip(f"{doc}.html is not part of this site")
    result = audits.get(doc) or audit_page(browser, base_url, doc, toc_docs())
    audits.setdefault(doc, result)
    assert not result.layout, "\n".join([result.url, str(result.counts), *result.layout])


_CODE_COLUMN = """() => {
  const pre = document.querySelector("div.cell_input pre");
  const cs = getComputedStyle(pre);
  const probe = document.createElement("span");
  probe.textContent = "0".repeat(100);
  pre.appendChild(probe);
  const char = probe.getBoundingClientRect().width / 100;
  probe.remove();
  const inner = pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  return Math.floor(inner / char + 0.01);
}"""


def test_code_column_width(site, base_url, browser):
    """A code cell's box at 1280x900 holds CODE_COLUMN characters of the code font (the width
    the notebooks are formatted to; if the theme or the CSS changes it, change both)."""
    doc = next(d for d in toc_docs() if chapter_number(d) is not None)
    context = browser.new_context(viewport=LAPTOP)
    context.route(lambda u: not u.startswith(base_url), lambda route: route.abort())
    try:
        page = context.new_page()
        page.goto(f"{base_url}{doc}.html", wait_until="load")
        fits = page.evaluate(_CODE_COLUMN)
    finally:
        context.close()
    assert fits == CODE_COLUMN, f"a code cell's box holds {fits} characters"


def test_summary_of_the_audit(audits):
    """Print one line per page (run with -s to see it); saved as _build/screenshots/audit.json,
    and the layout problems of each page as _build/screenshots/layout.json."""
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
            **a.counts,
        }
        for doc, a in audits.items()
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "audit.json").write_text(json.dumps(rows, indent=1) + "\n")
    layout = {doc: a.layout for doc, a in audits.items()}  # what each page fails of issue 17
    (SHOTS / "layout.json").write_text(json.dumps(layout, indent=1) + "\n")
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
    elif kind in CELLS:  # a code cell as MyST-NB renders it, after the article's title
        head, article, body = html.partition('<article class="bd-article">')
        body = re.sub(r"(</h1>)", lambda m: m.group(1) + CELLS[kind], body, count=1)
        new = head + article + body
    else:
        raise ValueError(kind)
    assert new != html, f"{kind}: nothing replaced"
    page.write_text(new)
    return doc


def _cell(code: str, output: str = "", tags: str = "", fold: str = "") -> str:
    """A code cell as MyST-NB renders it; ``fold="hide-cell"`` folds it as that tag does."""
    source = (
        '<div class="cell_input docutils container"><div class="highlight-ipython3 notranslate">'
        f'<div class="highlight"><pre><span></span>{code}\n</pre></div></div></div>'
    )
    out = (
        '<div class="cell_output docutils container"><div class="output stream '
        'highlight-myst-ansi notranslate"><div class="highlight"><pre><span></span>'
        f"{output}\n</pre></div></div></div>"
        if output
        else ""
    )
    body = source + out
    if fold == "hide-cell":
        body = (
            '<details class="admonition hide above-input"><summary aria-label="Toggle hidden '
            'content"><p class="collapsed admonition-title">Show code cell content</p>'
            '<p class="expanded admonition-title">Hide code cell content</p></summary>'
            f"{body}</details>"
        )
    tag_classes = "".join(f"tag_{t} " for t in tags.split())
    return f'<div class="cell {tag_classes}docutils container">{body}</div>'


PROBE = "probe_issue17"
WIDE_EQUATION = (
    '<div class="math notranslate nohighlight">\\[\\mathrm{probe} = '
    + " + ".join(f"\\frac{{a_{{{i}}}}}{{b_{{{i}}}}}" for i in range(40))
    + "\\]</div>"
)
LONG_LINE = f'{PROBE} = "{"x" * 120}"'  # 138 characters
CELLS = {
    "long-code-line": _cell(LONG_LINE),
    "glue-cell": _cell(f'glue("{PROBE}", 941, display=False)'),
    "answer-outside-dropdown": '<section id="exercises-probe"><h2>Exercises</h2>'
    + _cell(f'print("B =", 941)  # {PROBE}', f"B = 941 {PROBE}", tags="solution hide-input")
    + _cell(
        'print("C =", 7)  # folded', "C = 7 folded", tags="solution hide-cell", fold="hide-cell"
    )
    + "</section>",
    # a display equation wider than the column, and one that the theme lets run past it
    "wide-equation": WIDE_EQUATION,
    "equation-past-column": "<style>div.math, div.math mjx-container "
    "{overflow: visible !important}</style>" + WIDE_EQUATION,
}
IMG_SRC = re.compile(r'<img[^>]*src="\.\./(_images/[^"]+)"')
CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"
BROKEN = {
    "mathjax-cdn": (f"request to another host: {CDN}", "MathJax never", "raw TeX in the text"),
    "missing-image": ("HTTP 404", "image not decoded"),
    "script-error": ("uncaught: undefinedFunction is not defined",),
    "sidebar-missing-chapter": ("sidebar lacks notebooks/",),
    "long-code-line": (
        f"code block wider than its box ({len(LONG_LINE)} characters, the box holds "
        f"{CODE_COLUMN}): {PROBE}",
    ),
    "glue-cell": (f'code cell calls glue(: glue("{PROBE}"',),
    "equation-past-column": (
        "display equation runs past the text column (",
        r"): \mathrm{probe} = \frac{a_{0}}{b_{0}}",
        "page scrolls sideways at 390 px",
    ),
    "answer-outside-dropdown": (
        f"solution output outside a dropdown (tag solution: B = 941 {PROBE})",
    ),
}
# ... what the same audit must not report on that page: a solution folded with hide-cell
ACCEPTED = {"answer-outside-dropdown": ("C = 7 folded",)}
# ... and how many layout problems the page then has (the injected one only, by default)
LAYOUT_LINES = {"equation-past-column": 2}  # the equation, and the page at 390 px


def _audit_broken(kind: str, site: Path, browser, tmp_path: Path) -> Audit:
    copy = tmp_path / "html"
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns("_sources"))
    doc = _break(kind, copy)
    httpd, url = serve(copy)
    try:
        return audit_page(browser, url, doc, toc_docs(), mathjax_wait_ms=2000)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("kind", list(BROKEN))
def test_audit_fails_on_a_broken_copy(kind, site, browser, tmp_path):
    result = _audit_broken(kind, site, browser, tmp_path)
    report = "\n".join(result.problems + result.layout)
    for expected in BROKEN[kind]:
        assert expected in report, f"{kind}: {expected!r} not in\n{report}"
    for accepted in ACCEPTED.get(kind, ()):
        assert accepted not in report, f"{kind}: {accepted!r} reported\n{report}"
    if kind in CELLS:  # the audit fails on what it was given, and on nothing else
        assert len(result.layout) == LAYOUT_LINES.get(kind, 1), report
        assert not result.problems, report


def test_a_wide_equation_scrolls_inside_its_own_box(site, browser, tmp_path):
    """The book's CSS (and the theme's) keep a display equation wider than the column in its
    own scrolling box: the audit accepts it (and "equation-past-column" shows it would not
    accept one that runs past the column)."""
    result = _audit_broken("wide-equation", site, browser, tmp_path)
    assert not result.problems and not result.layout, result.problems + result.layout
    assert result.counts["equations scrolling in their box"] == "1", result.counts
