"""The Sphinx side of the book build: the extension that shapes the rendered site.

``_config.yml`` loads this module from ``book/_ext`` (``sphinx.local_extensions``);
jupyter-book runs it when ``python book/_ext/bookbuild.py build`` (the executing side)
renders the executed chapters. It numbers figures per chapter ("Fig. 4.2"), offers each chapter's
jupytext source (``.py``) in the download menu, renders the API page (``.. hesslib-api::``),
rewrites every page when ``_toc.yml`` changed, and leaves out of the site what no page loads
(sphinx-thebe's scripts, unused MathJax bundles, source maps, pages whose source is gone).
``site_weight`` measures the rendered site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import bookmeta as meta

__all__ = [
    "TOC_STAMP",
    "ApiSection",
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


@dataclass(frozen=True)
class ApiSection:
    """One section of the API page."""

    title: str  # reStructuredText of the heading
    level: int  # 1: a section of the page, 2: a subsection
    summary: str  # reStructuredText of the paragraph under the heading
    names: list[str] = field(default_factory=list)  # dotted names documented in it


def _first_paragraph(module) -> str:
    doc = (module.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split())


def _resolve(name: str) -> Any:
    """The object of a dotted name, ``hesslib.core.hvp``, imported as Python (and autodoc) do."""
    import importlib

    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    for part in parts[1:]:
        obj = getattr(obj, part)
    return obj


def _key(name: str, obj: Any) -> tuple:
    """What makes two exports the same object: its identity (a constant also needs its name,
    since equal small values are one object)."""
    if callable(obj) or isinstance(obj, ModuleType):
        return (id(obj),)
    return (name.rsplit(".", 1)[-1], id(obj))


def _public_modules(package) -> list:
    """The modules named in ``package.__all__`` (``hesslib.core``, ..., the lazy ones too)."""
    return [mod for n in package.__all__ if isinstance(mod := getattr(package, n), ModuleType)]


def api_modules() -> list[ApiSection]:
    """The sections of the API page, in order.

    First the curated top level, ``hesslib.API_GROUPS`` (each a subsection of names called as
    ``hl.X``); then every subpackage of ``hesslib.__all__`` (``hesslib.core``, ...,
    ``hesslib.plot``) with the names of its ``__all__``; then the chapter modules
    (``hesslib.chapters.CHAPTER_MODULES``) with theirs. An object exported at the top level
    (or by an earlier subpackage) is documented there only; a subpackage's section names it
    with a link.
    """
    import importlib

    import hesslib

    sections = [
        ApiSection(
            "The top level: ``hl.*``",
            1,
            "The names the chapters call most, as ``hl.<name>`` after ``import hesslib as "
            "hl``, by topic; the subpackages below document the rest.",
        )
    ]
    seen: dict[tuple, str] = {}
    for group, names in hesslib.API_GROUPS.items():
        dotted = [f"hesslib.{n}" for n in names]
        seen.update({_key(d, _resolve(d)): d for d in dotted})
        sections.append(ApiSection(group, 2, "", dotted))

    def documented(module) -> ApiSection:
        names, elsewhere = [], []
        for n in module.__all__:
            dotted = f"{module.__name__}.{n}"
            obj = getattr(module, n)
            if isinstance(obj, ModuleType):
                continue
            if (key := _key(dotted, obj)) in seen:
                elsewhere.append(seen[key])
            else:
                seen[key] = dotted
                names.append(dotted)
        summary = _first_paragraph(module)
        if elsewhere:
            links = ", ".join(f":py:obj:`~{d}`" for d in elsewhere)
            summary += f" Also exported here, and documented above: {links}."
        return ApiSection(f"``{module.__name__}``", 1, summary, names)

    chapters = None
    for module in _public_modules(hesslib):
        if module.__name__ == "hesslib.chapters":
            chapters = module
            continue
        sections.append(documented(module))
    if chapters is not None:
        sections.append(ApiSection(f"``{chapters.__name__}``", 1, _first_paragraph(chapters)))
        for name in chapters.CHAPTER_MODULES:
            module = importlib.import_module(f"{chapters.__name__}.{name}")
            section = documented(module)
            sections.append(ApiSection(section.title, 2, section.summary, section.names))
    return sections


HEADING = {1: "-", 2: "~"}


def _constant_doc(name: str, obj: Any) -> list[str]:
    """The ``#:`` comment of a constant (a constant has no docstring of its own; autodoc would
    show its type's): looked up in every loaded module of the package that holds it."""
    import sys

    from sphinx.pycode import ModuleAnalyzer

    short = name.rsplit(".", 1)[-1]
    package = name.split(".")[0]
    holders = [
        m
        for m in list(sys.modules.values())
        if isinstance(m, ModuleType)
        and (m.__name__ == package or m.__name__.startswith(package + "."))
        and vars(m).get(short, object()) is obj
    ]
    for module in sorted(holders, key=lambda m: -m.__name__.count(".")):  # the definer first
        try:
            comment = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        except Exception:  # no source to analyse
            continue
        if doc := comment.get(("", short)):
            return list(doc)
    return []


def api_rst() -> list[str]:
    """reStructuredText of the API page: per section a summary table, then every object.

    Constants are described with their value and their ``#:`` comment in the source.
    """
    lines: list[str] = []
    for section in api_modules():
        heading = HEADING[section.level] * len(section.title)
        lines += [section.title, heading, ""]
        if section.summary:
            lines += [section.summary, ""]
        objects = {name: _resolve(name) for name in section.names}
        table = [f"   {n}" for n, o in objects.items() if callable(o)]
        if table:
            lines += [".. autosummary::", "", *table, ""]
        for name, obj in objects.items():
            if isinstance(obj, type):
                lines += [f".. autoclass:: {name}", "   :members:", ""]
            elif callable(obj):
                lines += [f".. autofunction:: {name}", ""]
            else:
                value = " ".join(repr(obj).split())
                value = value if len(value) <= 90 else value[:87] + "..."
                lines += [f".. py:data:: {name}", f"   :value: {value}", ""]
                lines += [f"   {line}" for line in _constant_doc(name, obj)] + [""]
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
