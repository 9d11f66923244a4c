"""The book build (book/_ext/): input errors, failing chapters, the incremental cache (what its
key covers, validation of cached notebooks, clean-up after a kill), the content hash's library
modules, the reproducibility page, the TOC, the API page, the Sphinx extension."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hesslib

ROOT = Path(__file__).resolve().parents[1]
BOOK_EXT = ROOT / "book" / "_ext"  # the build: scripts beside the book, not in the library
if str(BOOK_EXT) not in sys.path:
    sys.path.insert(0, str(BOOK_EXT))
import bookbuild as book  # noqa: E402
import bookchapters as chapters  # noqa: E402
import bookmeta as meta  # noqa: E402
import bookpage  # noqa: E402
import booksite  # noqa: E402

OK_CHAPTER = """\
# %% [markdown]
# # 98 A chapter that works

# %% tags=["parameters"]
profile = "default"
seed = 3
N = None

# %%
print(f"profile={profile} N={N}")
"""

FAILING_CHAPTER = """\
# %% [markdown]
# # 99 A chapter that fails

# %% tags=["parameters"]
profile = "default"

# %%
x = 1

# %%
y = x / 0

# %%
print("never reached")
"""


def make_root(tmp_path: Path, **chapters: str) -> Path:
    (tmp_path / "notebooks").mkdir(parents=True)
    for name, source in chapters.items():
        (tmp_path / "notebooks" / f"{name}.py").write_text(source)
    return tmp_path


def cli(capsys, root: Path, *args: str) -> tuple[int, str]:
    code = book.main(["--root", str(root), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


# --- bad input: clear errors listing the valid choices -----------------------------------------


def test_unknown_chapter_lists_valid_chapters(tmp_path, capsys):
    root = make_root(tmp_path, **{"98_ok": OK_CHAPTER})
    code, out = cli(capsys, root, "run", "07")
    assert code == 2
    assert "unknown chapter '07'" in out and "98 (98_ok)" in out


def test_unknown_profile_lists_valid_profiles(tmp_path, capsys):
    root = make_root(tmp_path, **{"98_ok": OK_CHAPTER})
    code, out = cli(capsys, root, "run", "98", "--profile", "huge")
    assert code == 2
    assert "unknown profile 'huge'" in out and "quick, default, paper" in out
    code, out = cli(capsys, root, "build", "--profile", "huge")
    assert code == 2 and "valid profiles" in out


def test_unknown_parameter_lists_the_parameters_cell(tmp_path, capsys):
    root = make_root(tmp_path, **{"98_ok": OK_CHAPTER})
    code, out = cli(capsys, root, "run", "98", "-p", "M", "3")
    assert code == 2
    assert "unknown parameter 'M'" in out and "valid: N, profile, seed" in out
    assert not (root / "_build" / "executed").exists()


def test_chapter_resolution_accepts_number_and_name(tmp_path):
    root = make_root(tmp_path, **{"98_ok": OK_CHAPTER, "04_static": OK_CHAPTER})
    assert chapters.resolve_chapter(root, "4").name == "04_static"
    assert chapters.resolve_chapter(root, "04").name == "04_static"
    assert chapters.resolve_chapter(root, "98_ok").name == "98_ok"
    assert [c.number for c in chapters.find_chapters(root)] == ["04", "98"]


def test_parameter_values_and_defaults(tmp_path):
    assert chapters.parse_value("3") == 3 and chapters.parse_value("1e-3") == 1e-3
    assert chapters.parse_value("True") is True and chapters.parse_value("none") is None
    assert chapters.parse_value("mse") == "mse"
    path = make_root(tmp_path, **{"98_ok": OK_CHAPTER}) / "notebooks" / "98_ok.py"
    defaults = chapters.parameter_defaults(chapters.read_notebook(path))
    assert defaults == {"profile": "default", "seed": 3, "N": None}


def test_the_command_runs_from_any_directory(tmp_path):
    """``python book/_ext/bookbuild.py`` finds the repository from its own location."""
    command = [sys.executable, str(BOOK_EXT / "bookbuild.py")]
    out = subprocess.run(
        [*command, "run", "77"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2, out.stderr
    first = chapters.find_chapters(ROOT)[0]
    assert "unknown chapter '77'" in out.stderr
    assert f"{first.number} ({first.name})" in out.stderr  # the repository's chapters
    usage = subprocess.run(
        [*command, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert usage.returncode == 0 and "usage: python book/_ext/bookbuild.py" in usage.stdout
    assert not list(tmp_path.iterdir())  # nothing written where it was called from


# --- a failing chapter -------------------------------------------------------------------------


@pytest.mark.book
def test_failing_chapter_names_cell_and_leaves_no_executed_notebook(tmp_path, capsys):
    root = make_root(tmp_path, **{"98_ok": OK_CHAPTER, "99_fail": FAILING_CHAPTER})
    code, out = cli(capsys, root, "build", "--profile", "quick")
    assert code == 1
    assert "chapter 99_fail failed at cell 4 (notebooks/99_fail.py, line 11)" in out
    assert "ZeroDivisionError: division by zero" in out
    executed = root / "_build" / "executed" / "quick"
    assert (executed / "98_ok.ipynb").is_file()  # the other chapter still ran
    assert not (executed / "99_fail.ipynb").exists()
    assert not (executed / "99_fail.hash").exists()
    assert not list(executed.glob(".*partial*"))
    assert not (root / "notebooks" / "99_fail.ipynb").exists()
    assert (root / "_build" / "failed" / "quick" / "99_fail.ipynb").is_file()


def test_build_skips_chapters_not_in_the_toc(tmp_path, capsys):
    root = make_root(tmp_path, **{"98_ok": OK_CHAPTER, "99_fail": FAILING_CHAPTER})
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: Chapters\n"
        "    chapters:\n      - file: notebooks/98_ok\n"
    )
    assert chapters.toc_files(root) == ["book/intro", "notebooks/98_ok"]
    assert [c.name for c in chapters.book_chapters(root)] == ["98_ok"]
    assert "not in _toc.yml, so not built: 99_fail" in capsys.readouterr().out
    assert chapters.toc_files(tmp_path / "nowhere") is None


# --- incremental execution ---------------------------------------------------------------------


@pytest.mark.book
def test_chapter_is_re_executed_only_when_its_inputs_change(tmp_path, monkeypatch):
    chapter = OK_CHAPTER + "\n# %%\nimport demolib\n\nprint(f'X={demolib.X}')\n"
    root = make_root(tmp_path, **{"98_ok": chapter})
    # the hash covers this package instead of hesslib/, which may be edited now
    site = tmp_path / "site"
    lib = site / "demolib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("X = 1\n")
    (lib / "unused.py").write_text("Y = 1\n")
    monkeypatch.setattr(book, "LIB_DIR", lib)
    monkeypatch.setenv("PYTHONPATH", str(site))  # the kernel imports it from there
    ex = book.Executor(root, progress=False)
    (ch,) = chapters.find_chapters(root)

    first = ex.execute(ch, "quick")
    assert first.status == "executed", first.error
    record = meta.read_record(first.path)
    assert record["profile"] == "quick" and record["parameters"] == {"profile": "quick"}
    assert record["seed"] == 3 and record["wall_seconds"] > 0 and record["torch"]
    assert (first.path.with_suffix(".hash")).read_text().strip() == record["content_hash"]

    assert ex.execute(ch, "quick").status == "cached"
    assert ex.execute(ch, "quick", force=True).status == "executed"
    assert ex.execute(ch, "quick", {"N": 5}).status == "executed"  # parameters changed
    assert ex.execute(ch, "quick", {"N": 5}).status == "cached"
    ch.path.write_text(chapter.replace("seed = 3", "seed = 4"))  # source changed
    assert ex.execute(ch, "quick", {"N": 5}).status == "executed"
    assert ex.execute(ch, "default").status == "executed"  # one cache per profile
    assert ex.execute(ch, "quick", {"N": 5}).status == "cached"
    (lib / "unused.py").write_text("Y = 2\n")  # a module the chapter does not import
    assert ex.execute(ch, "quick", {"N": 5}).status == "cached"
    (lib / "__init__.py").write_text("X = 2\n")  # the library the chapter imports changed
    assert ex.execute(ch, "quick", {"N": 5}).status == "executed"

    nb = json.loads(ex.target(ch, "quick").read_text())
    outputs = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "profile=quick N=5" in outputs and "X=2" in outputs


# --- the content hash: which library modules a chapter depends on ------------------------------

# A package shaped like hesslib: eager subpackages, lazy ones (``__getattr__``), relative and
# absolute imports, an import inside a function, a subpackage no chapter here reaches.
FAKE_LIB = {
    "__init__.py": """\
import importlib

from . import core
from .core.blocks import block_norms

_LAZY = ("plot", "chapters", "distributed")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(name)
""",
    "core/__init__.py": "from . import models\nfrom .blocks import block_norms\n",
    "core/blocks.py": "def block_norms():\n    from .checks import check\n\n    return check()\n",
    "core/checks.py": "def check():\n    return 1\n",
    "core/models.py": "import torch\n",
    "core/unused.py": "Z = 0\n",
    "plot/__init__.py": "from .heatmaps import heatmap\n",
    "plot/heatmaps.py": "from ..chapters.observations import Summary\n\n\ndef heatmap(): ...\n",
    "chapters/__init__.py": """\
import importlib

CHAPTER_MODULES = ("observations", "static_force")


def __getattr__(name):
    return importlib.import_module(f".{name}", __name__)
""",
    "chapters/observations.py": "from ..core import blocks\n\n\nclass Summary: ...\n",
    "chapters/static_force.py": "from fakelib.core.models import *\n",
    "distributed/__init__.py": "from .ops import slq\n",
    "distributed/ops.py": "def slq(): ...\n",
}
CORE = {"__init__.py", "core/__init__.py", "core/blocks.py", "core/checks.py", "core/models.py"}


def fake_lib(tmp_path: Path) -> Path:
    lib = tmp_path / "fakelib"
    for rel, text in FAKE_LIB.items():
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text(text)
    return lib


def imported(source: str, lib: Path) -> set[str]:
    return {p.relative_to(lib).as_posix() for p in meta.library_files(source, lib)}


def test_library_files_follow_the_imports_of_the_chapter(tmp_path):
    lib = fake_lib(tmp_path)
    plot = {"plot/__init__.py", "plot/heatmaps.py", "chapters/__init__.py"}
    plot |= {"chapters/observations.py"}
    assert imported("import numpy as np\n", lib) == set()
    assert imported("import fakelib as hl\n", lib) == CORE  # eager: __init__ and what it imports
    assert imported("import fakelib as hl\n\nhl.plot.heatmap()\n", lib) == CORE | plot
    assert imported("import fakelib.plot\n", lib) == CORE | plot
    static = CORE | {"chapters/__init__.py", "chapters/static_force.py"}
    assert imported("from fakelib.chapters import static_force as ch\n", lib) == static
    assert imported("import fakelib as hl\n\nhl.chapters.static_force.run()\n", lib) == static
    aliased = "import fakelib as hl\n\nch = hl.chapters\nch.static_force.run()\n"
    assert imported(aliased, lib) == static
    assert imported("import fakelib as hl\n\nhl.chapters\n", lib) == CORE | {"chapters/__init__.py"}
    assert imported("def f():\n    from fakelib.distributed import slq\n", lib) == CORE | {
        "distributed/__init__.py",
        "distributed/ops.py",
    }
    everything = {p.relative_to(lib).as_posix() for p in lib.rglob("*.py")}
    unreached = {"chapters/static_force.py", "core/unused.py"}  # not direct submodules
    assert imported("from fakelib import *\n", lib) == everything - unreached
    assert imported('print("unclosed\n', lib) == everything  # unknown: everything counts


def test_content_hash_covers_source_parameters_library_and_lock(tmp_path):
    lib = fake_lib(tmp_path)
    lock = tmp_path / "lock.txt"
    lock.write_text("torch==2.13.0\n")
    chapter = "import fakelib as hl\n\nhl.plot.heatmap()\n"

    def digest(source=chapter, profile="quick", params=None):
        params = {"profile": profile} if params is None else params
        return meta.content_hash(source, profile, params, lib_dir=lib, extra=[lock])

    base = digest()
    assert digest() == base
    assert digest(source=chapter + "\n") != base
    assert digest(profile="paper") != base
    assert digest(params={"profile": "quick", "N": 3}) != base
    # modules the chapter does not reach: the lazy distributed/, core/unused.py
    (lib / "distributed" / "ops.py").write_text("def slq(): return 2\n")
    (lib / "core" / "unused.py").write_text("Z = 1\n")
    assert digest() == base
    (lib / "core" / "blocks.py").write_text(FAKE_LIB["core/blocks.py"] + "# edited\n")
    changed_lib = digest()
    assert changed_lib != base
    (lib / "chapters" / "observations.py").write_text("class Summary: pass\n")  # via hl.plot
    assert digest() != changed_lib
    changed_lib = digest()
    lock.write_text("torch==2.14.0\n")
    assert digest() != changed_lib


def test_content_hash_covers_the_hesslib_modules_a_chapter_reaches(tmp_path):
    """On a copy of hesslib: editing a module changes the hash exactly when the chapter
    reaches it (the build's own modules, in book/_ext/, are not in the package at all)."""
    lib = tmp_path / "hesslib"
    shutil.copytree(book.LIB_DIR, lib, ignore=shutil.ignore_patterns("__pycache__"))
    assert not list(lib.rglob("book*.py"))
    source = "import hesslib as hl\nfrom hesslib.chapters import static_force as ch\n"
    files = imported(source, lib)
    assert {"__init__.py", "core/__init__.py", "core/blocks.py", "core/profiles.py"} <= files
    assert {"chapters/__init__.py", "chapters/static_force.py"} <= files
    assert not {"cli.py", "distributed/cli.py", "symbolic/__init__.py"} & files
    lazy = ("plot/", "symbolic/", "chapters/")
    assert not [f for f in imported("import hesslib as hl\n", lib) if f.startswith(lazy)]
    assert "plot/__init__.py" in imported("import hesslib as hl\nhl.plot.heatmap\n", lib)
    for rel in ("distributed/ops.py", "distributed/cli.py", "core/blocks.py", "cli.py"):
        before = meta.content_hash(source, "quick", {}, lib_dir=lib, extra=[])
        with (lib / rel).open("a") as f:
            f.write("\n# edited\n")
        after = meta.content_hash(source, "quick", {}, lib_dir=lib, extra=[])
        assert (after != before) == (rel in files), rel


def test_reproducibility_page_renders_every_fact():
    record = meta.make_record(
        chapter="01_observations",
        profile="quick",
        parameters={"profile": "quick", "N": 7},
        seed=0,
        seconds=12.5,
        digest="abc",
        facts={
            "device": "Some CPU (2 cores)",
            "torch": "2.13.0",
            "hesslib": "0.1.0",
            "python": "3.11.7",
            "platform": "Linux x86_64",
            "git_commit": "0123456789ab",
        },
    )
    other = {**record, "chapter": "02_x", "wall_seconds": 130.0}
    page = bookpage.render_reproducibility([record, other], "quick", {"quick": [record, other]})
    row = next(line for line in page.splitlines() if "01_observations>" in line)
    for fact in ("`quick`", "`N=7`", "| 0 |", "12.5 s"):
        assert fact in row
    assert "**2.4 min**" in page  # 12.5 s + 130 s
    for fact in ("Some CPU (2 cores)", "torch 2.13.0", "hesslib 0.1.0", "`0123456789ab`"):
        assert fact in page.split("| **Total**")[1]  # shared facts: once, under the table
    assert "| 01_observations | 12.5 s |" in page  # the cost of each profile
    assert "`quick` on Some CPU (2 cores)" in page
    # a profile executed for some chapters only: its total says over how many
    paper = {**record, "profile": "paper", "wall_seconds": 600.0}
    page = bookpage.render_reproducibility(
        [record, other], "quick", {"quick": [record, other], "paper": [paper]}
    )
    assert "| 02_x | 2.2 min | — |" in page
    assert "| **Total** | **2.4 min** | **10.0 min** (1 of 2 chapters) |" in page
    # a fact that differs between chapters gets a column
    gpu = {**other, "device": "NVIDIA H100"}
    page = bookpage.render_reproducibility([record, gpu], "quick", {})
    header = next(line for line in page.splitlines() if line.startswith("| Chapter |"))
    assert "| Device |" in header
    assert "NVIDIA H100" in next(line for line in page.splitlines() if "02_x>" in line)


# --- the table of contents ---------------------------------------------------------------------


def test_toc_lists_exactly_the_existing_chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    (part,) = [p for p in toc["parts"] if p["caption"] == "Chapters"]
    listed = [entry["file"] for entry in part["chapters"]]
    existing = [f"notebooks/{ch.name}" for ch in chapters.find_chapters(ROOT)]
    assert listed == existing
    pages = [
        e["file"] for p in toc["parts"] for e in p["chapters"] if e["file"].startswith("book/")
    ]
    for page in pages:
        generated = page == "book/reproducibility"
        assert generated or (ROOT / f"{page}.md").is_file(), page


# --- the API page: the curated top level, then each subpackage; valid reStructuredText ---------


def _public_modules():
    """The subpackages of ``hesslib.__all__`` and the chapter modules."""
    import importlib

    modules = [
        getattr(hesslib, n) for n in hesslib.__all__ if type(getattr(hesslib, n)) is type(hesslib)
    ]
    chapters = [
        importlib.import_module(f"hesslib.chapters.{n}") for n in hesslib.chapters.CHAPTER_MODULES
    ]
    return [m for m in modules if m.__name__ != "hesslib.chapters"] + chapters


def test_api_page_lists_the_top_level_first_then_each_module_once():
    sections = booksite.api_modules()
    names = [n for s in sections for n in s.names]
    assert len(names) == len(set(names))
    top = [f"hesslib.{n}" for group in hesslib.API_GROUPS.values() for n in group]
    assert names[: len(top)] == top
    titles = [s.title for s in sections]
    assert titles[1 : 1 + len(hesslib.API_GROUPS)] == list(hesslib.API_GROUPS)
    objects = {id(getattr(hesslib, n.split(".")[1])) for n in top}
    for module in _public_modules():
        assert f"``{module.__name__}``" in titles, module.__name__
        for name in module.__all__:
            obj = getattr(module, name)
            if type(obj) is type(hesslib):
                continue
            dotted = f"{module.__name__}.{name}"
            if callable(obj) and id(obj) in objects:  # documented as hl.<name>, not again
                assert dotted not in names, dotted
            else:
                assert dotted in names, dotted
    core = next(s for s in sections if s.title == "``hesslib.core``")
    assert "hesslib.core.pool_abs" in core.names and "hesslib.core.hvp" not in core.names
    assert ":py:obj:`~hesslib.hvp`" in core.summary  # the top-level ones: a link


@pytest.mark.book
def test_api_page_builds_without_warnings(tmp_path):
    """Only the API page, with the book's autodoc settings and -W: seconds, not a whole build.

    A docstring that is not valid reStructuredText (or a name exported twice) fails the book
    build; this finds it without executing any chapter.
    """
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    settings = {k: v for k, v in config["config"].items() if k.startswith(("autodoc", "napoleon"))}
    extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.autosummary"]
    extensions += ["sphinx.ext.napoleon", *config["local_extensions"]]
    paths = [str((ROOT / p).resolve()) for p in config["local_extensions"].values()]
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text((ROOT / "book" / "api.md").read_text())
    (src / "conf.py").write_text(
        f"import sys\nsys.path[:0] = {paths!r}\n"
        f"extensions = {extensions!r}\n"
        + "".join(f"{k} = {v!r}\n" for k, v in settings.items())
        + "myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        + [str(src), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    html = (tmp_path / "out" / "index.html").read_text()
    for name in (n for group in hesslib.API_GROUPS.values() for n in group):
        assert f'id="hesslib.{name}"' in html, f"hesslib.{name} is not on the API page"
    for name in ("hesslib.core.pool_abs", "hesslib.plot.heatmap", "hesslib.symbolic.talk_example"):
        assert f'id="{name}"' in html, name
    assert 'id="hesslib.core.hvp"' not in html  # documented once, as hesslib.hvp
    for module in hesslib.chapters.CHAPTER_MODULES:
        assert f'id="hesslib.chapters.{module}.' in html, module


# --- the Sphinx side of the book: book/_ext/booksite.py ----------------------------------------


def test_figures_are_numbered_per_chapter():
    from types import SimpleNamespace

    env = SimpleNamespace(
        toc_fignumbers={
            "notebooks/04_static": {"figure": {"b": (9,), "a": (7,)}, "table": {"t": (2,)}},
            "book/intro": {"figure": {"c": (1,)}},
        }
    )
    assert booksite._number_by_chapter(None, env) == []
    assert env.toc_fignumbers["notebooks/04_static"] == {
        "figure": {"a": (4, 1), "b": (4, 2)},
        "table": {"t": (4, 1)},
    }
    assert env.toc_fignumbers["book/intro"] == {"figure": {"c": (1,)}}
    assert booksite.chapter_number("notebooks/04_static") == 4
    assert booksite.chapter_number("book/notation") is None


def test_chapter_pages_offer_the_py_source(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "notebooks").mkdir(parents=True)
    (tmp_path / "notebooks" / "04_static.py").write_text("# %%\n")
    app = SimpleNamespace(srcdir=str(tmp_path))
    group = {
        "label": "download-buttons",
        "buttons": [
            {"label": "download-source-button", "text": ".ipynb"},
            {"label": "download-pdf-button", "text": ".pdf"},
        ],
    }
    context = {"header_buttons": [group], "pathto": lambda path, kind: f"../{path}"}
    booksite._py_download(app, "notebooks/04_static", "page.html", context, None)
    assert [b["text"] for b in group["buttons"]] == [".ipynb", ".py", ".pdf"]
    assert group["buttons"][1]["url"] == "../_sources/notebooks/04_static.py"
    booksite._py_download(app, "book/intro", "page.html", context, None)  # not a chapter
    assert len(group["buttons"]) == 3


def test_every_page_is_rewritten_when_the_toc_changes(tmp_path):
    """Each page's sidebar holds the whole TOC: a TOC change must rewrite every page."""
    from types import SimpleNamespace

    (tmp_path / "_toc.yml").write_text("root: intro\n")
    out = tmp_path / "html"
    out.mkdir()
    app = SimpleNamespace(srcdir=str(tmp_path), outdir=str(out), config=SimpleNamespace())
    env = SimpleNamespace(found_docs={"intro", "a", "b", "new"})

    def outdated():
        return booksite._reread_all_when_toc_changes(app, env, {"new"}, {"a"}, set())

    assert outdated() == ["b", "intro"]  # no stamp: output of an unknown TOC
    (out / booksite.TOC_STAMP).write_text(booksite._toc_digest(app) + "\n")
    assert outdated() == []
    (tmp_path / "_toc.yml").write_text("root: intro\nchapters:\n  - file: new\n")
    assert outdated() == ["b", "intro"]


# --- the cache is validated, keyed on the data read, and cleaned after a kill -----------------


@pytest.mark.book
def test_an_unusable_cached_notebook_is_executed_again(tmp_path, capsys):
    """A truncated, failed, unfinished or foreign cached notebook is never reused."""
    root = make_root(tmp_path, **{"98_ok": OK_CHAPTER})
    ex = book.Executor(root, progress=False)
    (ch,) = chapters.find_chapters(root)
    target = ex.target(ch, "quick")
    assert ex.execute(ch, "quick").status == "executed"
    good = target.read_text()

    def corrupt(edit):
        nb = json.loads(good)
        edit(nb)
        target.write_text(json.dumps(nb))

    code_cells = [c for c in json.loads(good)["cells"] if c["cell_type"] == "code"]
    last = len(json.loads(good)["cells"]) - 1
    assert code_cells[-1]["outputs"]
    cases = {
        "not a valid notebook": lambda: target.write_text(good[: len(good) // 2]),
        "its record does not match (chapter)": lambda: corrupt(
            lambda nb: nb["metadata"][meta.META_KEY].update(chapter="97_other")
        ),
        f"cell {last + 1} has an error output": lambda: corrupt(
            lambda nb: nb["cells"][last]["outputs"].append(
                {"output_type": "error", "ename": "E", "evalue": "", "traceback": []}
            )
        ),
        f"cell {last + 1} was not executed": lambda: corrupt(
            lambda nb: nb["cells"][last].update(execution_count=None)
        ),
    }
    for reason, damage in cases.items():
        damage()
        capsys.readouterr()
        assert ex.execute(ch, "quick").status == "executed", reason
        assert f"cached notebook is unusable ({reason}" in capsys.readouterr().out
        digest = target.with_suffix(".hash").read_text().strip()
        assert (
            book.cache.check_executed(
                target, digest=digest, chapter="98_ok", profile="quick", key=meta.META_KEY
            )
            is None
        )  # rewritten by a fresh execution
        assert ex.execute(ch, "quick").status == "cached"
        good = target.read_text()
    # through the command: the truncated notebook of the issue is executed, not "up to date"
    target.write_text(good[: len(good) // 2])
    code, out = cli(capsys, root, "build", "--profile", "quick", "--no-html")
    assert code == 0 and "up to date" not in out and "executing 98_ok" in out
    assert meta.read_record(target)["chapter"] == "98_ok"


CIFAR_CHAPTER = """\
# %% [markdown]
# # 97 Reads CIFAR-100

# %% tags=["parameters"]
profile = "default"
cifar_root = None

# %%
import hesslib as hl

data = hl.nets.cifar100(2, root=cifar_root, md5=None, image_size=8, device="cpu")
print(data.note)
"""


def _fake_cifar(folder: Path, seed: int) -> Path:
    """An extracted ``cifar-100-python/`` folder of random images (not the real data)."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    split = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"fine_labels": [1] * 4}
    for name in ("train", "test"):
        (folder / name).write_bytes(pickle.dumps(split, protocol=2))
    names = {b"fine_label_names": [b"c%d" % i for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(names, protocol=2))
    return folder


def test_the_cache_key_covers_the_data_a_chapter_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # an empty user cache
    monkeypatch.delenv("HESSLIB_CIFAR100", raising=False)
    monkeypatch.delenv("HESSLIB_DOWNLOAD", raising=False)
    root = make_root(tmp_path, **{"97_cifar": CIFAR_CHAPTER, "98_ok": OK_CHAPTER})
    ex = book.Executor(root, progress=False)
    cifar_ch, ok_ch = chapters.find_chapters(root)
    params = {"profile": "quick"}

    def key(ch):
        digest = ex.digest(ch, "quick", params)
        return digest, ex._inputs[ch.name]["data"]

    standin, data = key(cifar_ch)
    assert data == {"cifar100": "stand-in"}
    plain, data = key(ok_ch)
    assert data == {}  # a chapter that reads no data set has none in its key
    a = _fake_cifar(tmp_path / "a" / "cifar-100-python", seed=0)
    b = _fake_cifar(tmp_path / "b" / "cifar-100-python", seed=1)
    monkeypatch.setenv("HESSLIB_CIFAR100", str(a.parent))
    with_a, data = key(cifar_ch)
    assert with_a != standin and data["cifar100"].startswith("folder train=")
    monkeypatch.setenv("HESSLIB_CIFAR100", str(b.parent))
    with_b, _ = key(cifar_ch)
    assert with_b not in (standin, with_a)  # other data, other key
    monkeypatch.setenv("HESSLIB_DOWNLOAD", "1")
    assert key(cifar_ch)[0] != with_b  # every HESSLIB_* variable is part of the key
    monkeypatch.delenv("HESSLIB_DOWNLOAD")
    assert key(cifar_ch)[0] == with_b
    monkeypatch.setenv("HESSLIB_CIFAR100", str(tmp_path / "missing"))
    assert key(cifar_ch)[1]["cifar100"].startswith("unavailable")
    assert key(ok_ch)[0] != plain  # the environment changed for every chapter


@pytest.mark.book
def test_a_new_data_source_re_executes_the_chapter(tmp_path, monkeypatch, capsys):
    """The issue's case: data made available through HESSLIB_CIFAR100 after a build."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HESSLIB_CIFAR100", raising=False)
    monkeypatch.delenv("HESSLIB_DOWNLOAD", raising=False)
    root = make_root(tmp_path, **{"97_cifar": CIFAR_CHAPTER})
    ex = book.Executor(root, progress=False)
    (ch,) = chapters.find_chapters(root)
    first = ex.execute(ch, "quick")
    assert first.status == "executed", first.error
    assert "stand-in" in first.path.read_text()
    assert meta.read_record(first.path)["inputs"]["data"] == {"cifar100": "stand-in"}
    assert ex.execute(ch, "quick").status == "cached"
    folder = _fake_cifar(tmp_path / "data" / "cifar-100-python", seed=0)
    monkeypatch.setenv("HESSLIB_CIFAR100", str(folder.parent))
    second = ex.execute(ch, "quick")
    assert second.status == "executed", second.error
    assert "not checksummed" in second.path.read_text()  # the page shows the new source
    # the reproducibility page names the data each chapter read, and labels its timings
    book.write_reproducibility(root, [ch], "quick")
    page = (root / "book" / "reproducibility.md").read_text()
    assert "97_cifar: folder train=" in page and "Wall-clock (measured)" in page
    assert "timings of the machine above, not results" in page


@pytest.mark.book
def test_a_failed_chapter_leaves_no_stale_page_or_cache(tmp_path, capsys):
    root = make_root(tmp_path, **{"99_fail": OK_CHAPTER})
    assert book.main(["--root", str(root), "build", "--profile", "quick", "--no-html"]) == 0
    executed = root / "_build" / "executed" / "quick"
    assert (executed / "99_fail.ipynb").is_file()
    html = root / "_build" / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "notebooks" / "99_fail.html").write_text("<p>last week's results</p>")
    (html / "_sources" / "notebooks").mkdir(parents=True)
    (html / "_sources" / "notebooks" / "99_fail.ipynb").write_text("{}")
    (root / "notebooks" / "99_fail.py").write_text(FAILING_CHAPTER)
    code, out = cli(capsys, root, "build", "--profile", "quick")
    assert code == 1 and "ZeroDivisionError" in out
    assert "removed its stale rendered page: _build/html/notebooks/99_fail.html" in out
    assert not (html / "notebooks" / "99_fail.html").exists()
    assert not list((html / "_sources" / "notebooks").iterdir())
    assert not (executed / "99_fail.ipynb").exists() and not (executed / "99_fail.hash").exists()


@pytest.mark.book
def test_the_build_writes_only_under_its_root_from_any_directory(tmp_path):
    root = make_root(tmp_path / "repo", **{"98_ok": OK_CHAPTER})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [sys.executable, str(BOOK_EXT / "bookbuild.py"), "--root", "../repo"]
    out = subprocess.run(
        [*command, "build", "--profile", "quick", "--no-html"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (root / "_build" / "executed" / "quick" / "98_ok.ipynb").is_file()
    assert not list(elsewhere.iterdir())
    page = book.write_reproducibility(root, chapters.find_chapters(root), "quick")
    assert page == root / "book" / "reproducibility.md" and page.is_file()
    assert not list(elsewhere.iterdir())


SLOW_CHAPTER = """\
# %% [markdown]
# # 96 Slow

# %% tags=["parameters"]
profile = "default"

# %%
print("started", flush=True)

# %%
import time

time.sleep(300)
"""


@pytest.mark.book
def test_sigterm_and_sigkill_leave_no_partial_files(tmp_path):
    import os
    import signal
    import time

    root = make_root(tmp_path / "repo", **{"96_slow": SLOW_CHAPTER})
    executed = root / "_build" / "executed" / "quick"
    runtime = root / "_build" / "runtime"
    command = [sys.executable, str(BOOK_EXT / "bookbuild.py"), "--root", str(root)]
    command += ["build", "--profile", "quick", "--no-html"]

    def start_and_wait():
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not list(executed.glob(".*.partial.ipynb")) or not list(runtime.glob("*")):
            assert proc.poll() is None and time.monotonic() < deadline, "no execution started"
            time.sleep(0.2)
        time.sleep(1.0)  # the kernel is running the sleeping cell
        return proc

    proc = start_and_wait()
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, log[-2000:]
    assert "interrupted: partial files removed" in log
    assert not [p.name for p in executed.iterdir()]  # no partial notebook, no hash
    assert not list(runtime.iterdir())  # the kernel's connection file went with it
    proc = start_and_wait()
    os.kill(proc.pid, signal.SIGKILL)  # nothing can clean up after this one ...
    proc.wait(timeout=60)
    assert list(executed.glob(".*.partial.ipynb")) and list(runtime.iterdir())
    (root / "notebooks" / "96_slow.py").write_text(OK_CHAPTER)
    out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "a killed build left" in out.stdout  # ... the next build does
    assert sorted(p.name for p in executed.iterdir()) == ["96_slow.hash", "96_slow.ipynb"]
    assert not list(runtime.iterdir())


def test_the_sweep_spares_files_of_a_build_still_running(tmp_path):
    import os

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    executed = tmp_path / "_build" / "executed" / "quick"
    executed.mkdir(parents=True)
    runtime = tmp_path / "_build" / "runtime"
    mine, gone = os.getpid(), int(dead)
    files = {
        executed / f".01_a.{mine}.partial.ipynb": True,  # a concurrent run: kept
        executed / f".01_a.{gone}.partial.ipynb": False,  # a killed one: removed
        executed / ".01_a.partial.ipynb": False,  # written by an older build: removed
        executed / f".01_a.hash.{gone}.123.tmp.json": False,
        executed / "01_a.ipynb": True,  # the cache itself: never touched
        runtime / str(mine) / "tmpabc.json": True,
        runtime / str(gone) / "tmpdef.json": False,
    }
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    removed = book.cache.sweep(tmp_path, "quick")
    for path, kept in files.items():
        assert path.exists() == kept, path
    assert runtime / str(gone) in removed and not (runtime / str(gone)).exists()
