"""The Sphinx side of the book build: the extension that shapes the rendered site.

``_config.yml`` lists this module in ``sphinx.extra_extensions``; jupyter-book loads it when
``python -m hesslib.book build`` (:mod:`hesslib.book`, the executing side) renders the
executed chapters. It numbers figures per chapter ("Fig. 4.2"), offers each chapter's
jupytext source (``.py``) in the download menu, renders the API page (``.. hesslib-api::``),
rewrites every page when ``_toc.yml`` changed, and leaves out of the site what no page loads
(sphinx-thebe's scripts, unused MathJax bundles, source maps, pages whose source is gone).
``site_weight`` measures the rendered site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import _bookmeta as meta

__all__ = [
    "TOC_STAMP",
    "api_modules",
    "api_rst",
    "chapter_number",
    "describe_weight",
    "setup",
    "site_weight",
]

CHAPTER_DOC = re.compile(r"^notebooks/(\d\d)_\w+$")
# MathJax bundles that sphinx-mathjax-offline copies but no page loads (each page loads the one
# in ``mathjax_path``; components it loads on demand live in sub-folders and are kept).
MATHJAX_BUNDLE = re.compile(r"^(tex|mml)-[\w-]+\.js$|^node-main\.js$")


def chapter_number(docname: str) -> int | None:
    """``4`` for the document ``notebooks/04_static_force``; ``None`` for other pages."""
    match = CHAPTER_DOC.match(docname)
    return int(match.group(1)) if match else None


def _number_by_chapter(app, env) -> list[str]:
    """Number figures (and tables, code blocks) per chapter: "Fig. 4.2" is chapter 04's second.

    Sphinx numbers them consecutively through the book; this renumbers those of
    ``notebooks/NN_*`` in their order, prefixed with ``NN``, so that a {numref} from another
    chapter reads unambiguously.
    """
    for docname, by_type in env.toc_fignumbers.items():
        number = chapter_number(docname)
        if number is None:
            continue
        for numbers in by_type.values():
            ordered = sorted(numbers, key=numbers.__getitem__)
            for k, ident in enumerate(ordered, start=1):
                numbers[ident] = (number, k)
    return []


def _py_download(app, pagename, templatename, context, doctree) -> None:
    """Offer the chapter's jupytext source (``.py``) in the theme's download menu."""
    if chapter_number(pagename) is None or not Path(app.srcdir, f"{pagename}.py").is_file():
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "download-buttons":
            continue
        buttons = list(group["buttons"])
        labels = {b.get("label") for b in buttons}
        if "download-notebook-button" in labels:  # the "source file" is the .ipynb again
            buttons = [b for b in buttons if b.get("label") != "download-source-button"]
        pdf = [k for k, b in enumerate(buttons) if b.get("label") == "download-pdf-button"]
        buttons.insert(
            pdf[0] if pdf else len(buttons),
            {
                "type": "link",
                "url": f"{context['pathto']('_sources', 1)}/{pagename}.py",
                "text": ".py",
                "tooltip": "Download the chapter's source (jupytext percent format)",
                "icon": "fas fa-file-code",
                "label": "download-py-button",
            },
        )
        group["buttons"] = buttons


def _is_thebe(script) -> bool:
    name = str(getattr(script, "filename", script) or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return name.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Drop sphinx-thebe's scripts: jupyter-book always loads the extension, which then
    declares ``const THEBE_JS_URL`` twice (a JavaScript error on every page), and nothing on
    this site uses it (no launch buttons: the site needs no remote server)."""
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        scripts[:] = [s for s in scripts if not _is_thebe(s)]


def _finish_site(app, exc) -> None:
    """Copy the chapters' ``.py`` sources beside their ``.ipynb``; drop stale pages and files
    that no page loads."""
    if exc is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    (out / TOC_STAMP).write_text(_toc_digest(app) + "\n")
    for docname in sorted(app.env.found_docs):
        src = Path(app.srcdir, f"{docname}.py")
        if chapter_number(docname) is not None and src.is_file():
            dst = out / "_sources" / f"{docname}.py"
            dst.parent.mkdir(parents=True, exist_ok=True)
            meta.copy_if_changed(src, dst)
    # Sphinx never deletes a page: one whose source is gone (a renamed chapter) would stay
    # on the site. Keep only the documents, the generated pages and the domain indices.
    keep = set(app.env.found_docs) | {"index", "genindex", "search"}
    keep |= {name for name, *_ in getattr(app.builder, "domain_indices", [])}
    for page in out.rglob("*.html"):
        rel = page.relative_to(out)
        if rel.parts[0] not in ("_static", "_sources") and str(rel.with_suffix("")) not in keep:
            page.unlink()
    mathjax = out / "_static" / "mathjax"
    used = Path(str(app.config.mathjax_path).split("?")[0]).name
    if mathjax.is_dir() and (mathjax / used).is_file():
        for path in mathjax.iterdir():
            if path.is_file() and MATHJAX_BUNDLE.match(path.name) and path.name != used:
                path.unlink()
    for path in (out / "_static").rglob("*.map"):  # source maps: only a debugger reads them
        path.unlink()


def api_modules() -> list[tuple[str, str, list[str], Any]]:
    """``(title, summary, dotted names, module)`` per public module, in the package's order.

    The modules are those ``hesslib/__init__.py`` re-exports (``_MODULES``),
    each with the names of its ``__all__`` under the ``hesslib`` namespace (``hesslib.hvp``),
    as the chapters call them (``hl.hvp``); then ``hesslib.plot``. A name exported twice is
    listed once, where it first appears.
    """
    import hesslib

    seen: set[str] = set()
    groups = []
    modules = list(getattr(hesslib, "_MODULES", []))
    for module in modules:
        names = [n for n in getattr(module, "__all__", []) if n not in seen]
        seen.update(names)
        if names:
            groups.append((module.__name__, module, [f"hesslib.{n}" for n in names]))
    plot = getattr(hesslib, "plot", None)
    if plot is not None:
        names = getattr(plot, "__all__", None) or [
            n for n, o in vars(plot).items() if callable(o) and not n.startswith("_")
        ]
        groups.append(("hesslib.plot", plot, [f"hesslib.plot.{n}" for n in names]))
    out = []
    for title, module, names in groups:
        doc = (module.__doc__ or "").strip().split("\n\n")[0]
        out.append((title, " ".join(doc.split()), names, module))
    return out


def api_rst() -> list[str]:
    """reStructuredText of the API page: per module a summary table, then every object.

    Constants are described with their value and their ``#:`` comment in the source (a
    constant has no docstring of its own; autodoc would show that of its type).
    """
    from sphinx.pycode import ModuleAnalyzer

    import hesslib

    lines: list[str] = []
    for title, summary, names, module in api_modules():
        objects = {}
        for name in names:
            obj = hesslib
            for part in name.split(".")[1:]:
                obj = getattr(obj, part)
            objects[name] = obj
        try:
            comments = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        except Exception:  # no source to analyse
            comments = {}
        heading = f"``{title}``"
        lines += [heading, "-" * len(heading), "", summary, "", ".. autosummary::", ""]
        lines += [f"   {n}" for n, o in objects.items() if callable(o)] + [""]
        for name, obj in objects.items():
            if isinstance(obj, type):
                lines += [f".. autoclass:: {name}", "   :members:", ""]
            elif callable(obj):
                lines += [f".. autofunction:: {name}", ""]
            else:
                value = " ".join(repr(obj).split())
                value = value if len(value) <= 90 else value[:87] + "..."
                doc = comments.get(("", name.rsplit(".", 1)[-1]), [])
                lines += [f".. py:data:: {name}", f"   :value: {value}", ""]
                lines += [f"   {line}" for line in doc] + [""]
    return lines


def _api_directive():
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList
    from sphinx.util.nodes import nested_parse_with_titles

    class HesslibApi(Directive):
        """``.. hesslib-api::`` (inside ``{eval-rst}``): the whole public API of hesslib."""

        def run(self):
            holder = nodes.section()
            holder.document = self.state.document
            content = StringList(api_rst(), source="hesslib-api")
            nested_parse_with_titles(self.state, content, holder)
            return holder.children

    return HesslibApi


TOC_STAMP = ".hesslib-toc"  # in the HTML output: the _toc.yml its pages were written with


def _toc_digest(app) -> str:
    import hashlib

    toc = Path(app.srcdir, str(getattr(app.config, "external_toc_path", "_toc.yml")))
    return hashlib.sha256(toc.read_bytes()).hexdigest() if toc.is_file() else ""


def _reread_all_when_toc_changes(app, env, added, changed, removed) -> list[str]:
    """Every page, when the HTML output was written with another ``_toc.yml``.

    Each page carries the whole table of contents in its sidebar, but Sphinx rewrites only the
    pages whose own source changed: a chapter added to the TOC would be missing from the
    sidebar of every other page (the browser test caught this).
    """
    stamp = Path(app.outdir, TOC_STAMP)
    if stamp.is_file() and stamp.read_text().strip() == _toc_digest(app):
        return []
    return sorted(set(env.found_docs) - set(added) - set(changed) - set(removed))


def setup(app) -> dict[str, Any]:
    """Sphinx entry point (jupyter-book loads this module as an extension)."""
    app.add_directive("hesslib-api", _api_directive())
    app.connect("env-get-outdated", _reread_all_when_toc_changes)
    app.connect("env-get-updated", _number_by_chapter, priority=900)
    app.connect("html-page-context", _py_download, priority=900)
    app.connect("html-page-context", _drop_thebe, priority=900)
    # after sphinx-mathjax-offline's copy (priority 500)
    app.connect("build-finished", _finish_site, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def site_weight(html: Path) -> tuple[int, int, Path]:
    """Total bytes and number of files of a built site, and its largest file."""
    files = [p for p in html.rglob("*") if p.is_file()]
    sizes = {p: p.stat().st_size for p in files}
    return sum(sizes.values()), len(files), max(sizes, key=sizes.__getitem__)


def describe_weight(html: Path) -> str:
    """One line for the build's log: the site's size, number of files and largest file."""
    total, count, largest = site_weight(html)
    mb = 1024 * 1024
    size = largest.stat().st_size / mb
    return (
        f"site: {total / mb:.1f} MB in {count} files; "
        f"largest: {largest.relative_to(html)} ({size:.1f} MB)"
    )
