"""The experiment drivers of the chapters, one module per notebook.

=====================  ======================================
``observations``       01 — the Hessian is near-block-diagonal
``dynamic_force``      03 — training removes ``H_wv``
``static_force``       04 — cases 1–4 and the class-count sweep
``random_matrices``    05 — second moments across the four cases
``llm_implications``   06 — heterogeneity, the dial, optimisers
=====================  ======================================

Chapter 02 needs no driver of its own: it calls :mod:`hesslib.symbolic` and the closed forms.
A submodule is imported on first use (``hl.chapters.static_force``), so the engine never pulls
in a chapter.
"""

import importlib as _importlib

CHAPTER_MODULES = (
    "observations",
    "dynamic_force",
    "static_force",
    "random_matrices",
    "llm_implications",
)

__all__ = list(CHAPTER_MODULES)


def __getattr__(name: str):
    """Import a chapter module on first access (``hl.chapters.static_force``)."""
    if name in CHAPTER_MODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'hesslib.chapters' has no attribute {name!r}")
