"""Every public entry point refuses bad input with a clear error that names the argument.

The functions: the curated names of ``hl.API_GROUPS`` that are callable, and every
``hl.<subpackage>.<function>(`` a chapter calls (read from ``notebooks/*.py``, so a new call
without a spec here fails :func:`test_every_public_function_has_a_spec`). Each gets one valid
call (:data:`SPECS`, on small float64 CPU inputs); every argument of that call is then replaced,
one at a time, by bad values derived from its type:

* a floating tensor: a NaN entry, int64, float16, one dimension too many, a string;
* an integer tensor (labels, tokens): float64, one dimension too many, a string;
* a size (``Spec.sizes``): 0 and -1; a seed: -1; any int: a string;
* a float: NaN (and -1 where it must be positive); a choice (``Spec.choices``): an unknown
  name; a dtype: int64 and float16; a model, layout, callable or result object: a string.

The call must raise ``ValueError`` or ``TypeError`` whose message names the argument — not a
raw torch/C++ error (``RuntimeError``, ``IndexError``, ``AttributeError`` …) and not a silent
result. Bad values a function legitimately accepts are listed, with the reason, in its
``Spec.accepts``. No function is exempt: every curated callable and every subpackage function a
chapter calls is held to this.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import hesslib as hl

ROOT = Path(__file__).resolve().parents[1]
BAD = "not-a-valid-value"  # the wrong-type value: a string where something else is expected


@dataclass
class Spec:
    """A valid call of one function, and how its arguments may be spoiled.

    Attributes:
        call: ``F -> (args, kwargs)``, a valid call on the shared small inputs ``F``.
        sizes: integer arguments that must be >= 1 (0 and -1 are tried).
        positive: float arguments that must be > 0 (-1.0 is tried).
        choices: string arguments with a fixed set of values (an unknown one is tried).
        accepts: ``{argument: {mutation, ...}}`` bad values that are legitimately accepted.
        only: spoil only these arguments (the others are placeholders, not a valid call).
    """

    call: Callable[[SimpleNamespace], tuple[tuple, dict]]
    sizes: tuple[str, ...] = ()
    positive: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    accepts: dict[str, set[str]] = field(default_factory=dict)
    only: tuple[str, ...] | None = None


def call(*args, **kwargs):
    """``call(a, b, k=v)`` → ``lambda F: ((a, b), {k: v})`` with ``F.x`` resolved lazily."""

    def build(F):
        def res(v):
            if not (isinstance(v, str) and v.startswith("F.")):
                return v
            obj = F
            for part in v.split(".")[1:]:
                obj = getattr(obj, part)
            return obj

        return tuple(res(a) for a in args), {k: res(v) for k, v in kwargs.items()}

    return build


@cache
def inputs() -> SimpleNamespace:
    """The small valid inputs every spec draws from (float64, CPU, seeded)."""
    F = SimpleNamespace()
    data = hl.gaussian_data(6, 3, 3, seed=0, device="cpu")
    F.X, F.y = data.X, data.y
    F.net = hl.one_hidden_net(3, 2, 3, seed=1, device="cpu")
    F.lin = hl.linear_net(3, 3, seed=2, device="cpu")
    F.W, F.V = F.net.W.detach(), F.net.V.detach()
    F.layout = F.net.layout()
    F.H = hl.closed_form_hessian(F.net, F.X, F.y)  # (12, 12)
    F.f, F.theta = hl.flat_loss(F.net, F.X, F.y, "ce")
    F.v = torch.ones(F.theta.numel(), dtype=torch.float64)
    F.matvec = lambda V: F.H @ V
    F.res = hl.lanczos(F.matvec, 12, num_steps=4, num_probes=2, seed=0)
    F.spectrum = hl.slq_density(F.res)
    F.grid = torch.linspace(-1.0, 1.0, 9, dtype=torch.float64)
    F.p = torch.exp(-(F.grid**2))
    F.q = torch.exp(-((F.grid - 0.3) ** 2))
    F.D = hl.pairwise_js([F.spectrum, hl.slq_density(F.res, sigma_rel=0.1)])
    F.A = torch.randn(6, 4, generator=hl.make_generator(3), dtype=torch.float64)
    F.P = torch.softmax(torch.randn(6, 3, generator=hl.make_generator(4)), dim=1).double()
    F.lam = torch.rand(20, generator=hl.make_generator(5), dtype=torch.float64)
    F.Cs = [2.0, 4.0, 8.0, 16.0]
    F.ratios = [0.5, 0.26, 0.12, 0.065]
    F.tokens, _ = hl.nets.char_tokens(hl.nets.zen_text(), vocab_size=8)
    F.gpt = hl.nets.gpt(8, context=2, width=4, seed=0, device="cpu", dtype=torch.float64)
    F.table = {"quick": {"N": 4}, "default": {"N": 8}}
    F.bws = hl.blockwise_spectra(F.net, F.X, F.y, F.layout, num_steps=3, num_probes=1, seed=0)
    return F


def _linear_example():
    return hl.symbolic.linear_example(2, 2, 2)


SPECS: dict[str, Spec] = {
    # ------------------------------------------------------------ device, data and models
    "device_name": Spec(call(device="cpu")),
    "make_generator": Spec(call(3)),
    "seed_everything": Spec(call(3)),
    "resolve_profile": Spec(call("quick", "F.table", verbose=False), choices=("profile",)),
    # X may also hold token ids (int64, (N, T)) or images (N, c, s, s)
    "Dataset": Spec(call("F.X", "F.y", 3), sizes=("num_classes",),
                    accepts={"X": {"int64", "extra_dim"}}),
    "gaussian_data": Spec(
        call(4, 3, 2, seed=0, device="cpu", dtype=torch.float64),
        sizes=("N", "d", "num_classes"),
    ),
    "LinearNet": Spec(call("F.V")),
    "OneHiddenNet": Spec(call("F.W", "F.V")),
    "linear_net": Spec(call(3, 2, init="lecun", seed=0, device="cpu"), sizes=("d", "num_classes"),
                       choices=("init",)),
    "one_hidden_net": Spec(call(3, 2, 2, init="lecun", seed=0, device="cpu"),
                           sizes=("d", "m", "num_classes"), choices=("init",)),
    "case_model": Spec(call(3, 3, 2, m=2, seed=0, device="cpu"), sizes=("d", "num_classes", "m")),
    "loss_fn": Spec(call("ce"), choices=("loss",)),
    # ------------------------------------------------------------ the HVP engine
    "flat_loss": Spec(call("F.net", "F.X", "F.y", "ce"), choices=("loss",)),
    "hvp": Spec(call("F.f", "F.theta", "F.v")),
    "block_diagonal_hvp": Spec(call("F.f", "F.theta", "F.layout", max_bytes=10**9),
                               sizes=("max_bytes",)),
    "full_hessian": Spec(call("F.f", "F.theta", chunk_size=4), sizes=("chunk_size",)),
    "model_hessian": Spec(call("F.net", "F.X", "F.y", "ce"), choices=("loss",)),
    "hessian_reference": Spec(call("F.f", "F.theta")),
    # ------------------------------------------------------------ closed forms
    "closed_form_hessian": Spec(call("F.net", "F.X", "F.y", loss="ce"), choices=("loss",)),
    "closed_form_blocks": Spec(call("F.net", "F.X", "F.y", loss="ce"), choices=("loss",)),
    "hidden_layer_hessian": Spec(call("F.X", "F.W", "F.V", loss="ce"), choices=("loss",)),
    "output_layer_hessian": Spec(
        call("F.X", "F.W", "F.V", loss="ce", classes=2), sizes=("classes",), choices=("loss",)
    ),
    "hwv_decomposition": Spec(call("F.X", "F.y", "F.W", "F.V", loss="ce"), choices=("loss",)),
    "two_layer_hessian": Spec(call("F.W", "F.V", torch.zeros(3, 3, dtype=torch.float64))),
    # ------------------------------------------------------------ blocks, ratios, fits
    "BlockLayout": Spec(call((2, 2), ("a", "b"), (("g", 0, 2),))),
    "block_norms": Spec(call("F.H", "F.layout", chunk_rows=5), sizes=("chunk_rows",)),
    "block_stats": Spec(call("F.H", "F.layout", group="W"), choices=("group",)),
    "block_ratio": Spec(call("F.H", "F.layout", group="V"), choices=("group",)),
    "diag_mass_fraction": Spec(call("F.H", "F.layout")),
    "block_ratios_at_init": Spec(call("F.net", "F.X", loss="ce"), choices=("loss",)),
    "predicted_block_ratios": Spec(call("F.net", "F.X", N=6, loss="ce"), sizes=("N",),
                                   choices=("loss",)),
    "output_block_norms_gram": Spec(call("F.A", "F.P", classes=[0, 2])),
    "lm_head_block_stats": Spec(
        call(6, 4, 5, seed=0, chunk=2, device="cpu", dtype=torch.float64),
        sizes=("N", "d", "num_classes", "chunk"),
    ),
    "fit_slope": Spec(call("F.Cs", "F.ratios", c_min=2.0, level=0.95), positive=("level",)),
    # ------------------------------------------------------------ spectra
    "lanczos": Spec(
        call("F.matvec", 12, num_steps=3, num_probes=2, seed=0, dtype=torch.float64),
        sizes=("dim", "num_steps", "num_probes"),
    ),
    "top_eigenpairs": Spec(
        call("F.matvec", 12, 2, which="largest", block_size=2, max_basis=8, tol=1e-8,
             max_matvecs=40, seed=0, dtype=torch.float64),
        sizes=("dim", "k", "block_size", "max_basis", "max_matvecs"),
        positive=("tol",),
        choices=("which",),
    ),  # fmt: skip
    "slq": Spec(
        call("F.matvec", 12, num_steps=3, num_probes=2, seed=0, num_grid=16, sigma_rel=0.05),
        sizes=("dim", "num_steps", "num_probes", "num_grid"),
        positive=("sigma_rel",),
    ),
    "slq_density": Spec(
        call("F.res", num_grid=16, sigma_rel=0.05, sigma=0.1, margin=2.0),
        sizes=("num_grid",),
        positive=("sigma_rel", "sigma", "margin"),
    ),
    "block_slq": Spec(
        call("F.matvec", "F.layout", 12, num_steps=2, num_probes=1, seed=0, num_grid=8),
        sizes=("dim", "num_steps", "num_probes", "num_grid"),
    ),
    # densities are array-likes of any real dtype, read exactly in float64
    # and p, q may carry batch dimensions, (..., G)
    "js_distance": Spec(call("F.p", "F.q", "F.grid", base=2.0), positive=("base",),
                        accepts={"p": {"int64", "float16", "extra_dim"},
                                 "q": {"int64", "float16", "extra_dim"},
                                 "grid": {"int64", "float16"}}),
    "pairwise_js": Spec(call([hl.slq_density((torch.zeros(1, 1), torch.ones(1, 1)), sigma=1.0),
                              hl.slq_density((torch.ones(1, 1), torch.ones(1, 1)), sigma=1.0)],
                             num_grid=16, base=2.0),
                        sizes=("num_grid",), positive=("base",)),
    "js_zero": Spec(call("F.D")),
    "blockwise_spectra": Spec(
        call("F.net", "F.X", "F.y", "F.layout", num_steps=2, num_probes=1, seed=0, loss="ce"),
        sizes=("num_steps", "num_probes"),
        choices=("loss",),
    ),
    # ------------------------------------------------------------ random matrices
    # the laws take array-likes of any real dtype and shape (converted exactly to float64)
    "semicircle_density": Spec(call("F.grid", sigma=1.0), positive=("sigma",),
                               accepts={"x": {"int64", "float16", "extra_dim"}}),
    "marchenko_pastur_density": Spec(call("F.lam", ratio=0.5, sigma2=1.0),
                                     positive=("ratio", "sigma2"),
                                     accepts={"x": {"int64", "float16", "extra_dim"}}),
    "gmp_density": Spec(call(torch.linspace(0.1, 2.0, 5, dtype=torch.float64), [1.0, 2.0],
                             gamma=0.5, eps=0.01),
                        positive=("gamma", "eps"), accepts={"x": {"int64", "float16"}}),
    "second_moment_prediction": Spec(call("F.lam", gamma=0.5), positive=("gamma",),
                                     accepts={"lam": {"int64", "float16", "extra_dim"}}),
    "stieltjes_empirical": Spec(call("F.lam", [0.5 + 0.1j]),
                                accepts={"eigs": {"int64", "float16", "extra_dim"}}),
    # ------------------------------------------------------------ training
    "train_adam": Spec(call("F.net", "F.X", "F.y", steps=2, lr=1e-3, loss="ce"),
                       sizes=("steps",), positive=("lr",), choices=("loss",)),
    # ------------------------------------------------------------ what the chapters call
    "core.log_correlation": Spec(call("F.Cs", "F.ratios")),
    "core.loglog_fit": Spec(call("F.Cs", "F.ratios", [0.01, 0.01, 0.01, 0.01], level=0.95),
                            positive=("level",)),
    "core.time_call": Spec(call(lambda: None, repeats=2, warmup=0), sizes=("repeats",)),
    "nets.adam_mini_blocks": Spec(call("F.gpt")),
    "nets.adam_mini_num_blocks": Spec(call("F.gpt")),
    "nets.char_tokens": Spec(call("abcab", vocab_size=3), sizes=("vocab_size",)),
    "nets.deep_net": Spec(call(3, 4, 2, depth=2, seed=0, device="cpu"),
                          sizes=("d", "width", "num_classes", "depth"), choices=("init",)),
    "nets.digits_data": Spec(call(num=5, seed=0, device="cpu"), sizes=("num",)),
    "nets.gpt": Spec(call(8, context=2, width=4, seed=0, device="cpu"),
                     sizes=("vocab_size", "context", "width")),
    "nets.gpt_layout": Spec(call("F.gpt", by="module"), choices=("by",)),
    "nets.spectra_settings": Spec(call("gpt", "quick"), choices=("model", "profile")),
    "nets.spectra_file_settings": Spec(call(hl.nets.spectra_settings("gpt", "quick"), seed=0),
                                       choices=("partition",)),
    "nets.spectra_problem": Spec(call(hl.nets.spectra_settings("gpt", "quick"), seed=0,
                                      device="cpu"), choices=("partition",)),
    "nets.token_windows": Spec(call("F.tokens", 2, num=3, vocab_size=8, device="cpu"),
                               sizes=("context", "num", "vocab_size")),
    "rmt.block_spectra": Spec(call(20, 4, 3, num_samples=2, num_ref=50, seed=0),
                              sizes=("N", "d", "C", "num_samples", "num_ref")),
    "rmt.ce_diagonal_weights": Spec(call("F.X", "F.V.T")),
    "rmt.decoupling_gap": Spec(call([40, 80], gamma=0.2, C=3, zeta=[1 + 0.5j], num_samples=2,
                                    num_ref=40, seed=0),
                               sizes=("C", "num_samples", "num_ref"), positive=("gamma",)),
    "rmt.diagonal_block": Spec(call("F.X", "F.V.T", 0)),
    # eigs, grid, density: array-likes of any real dtype read exactly in float64, like the laws
    # they are compared with; eigs of any shape (flattened: wigner_eigenvalues' (M, n) rows)
    "rmt.ks_distance": Spec(call("F.lam", torch.linspace(0.0, 1.0, 11, dtype=torch.float64),
                                 torch.ones(11, dtype=torch.float64)),
                            accepts={"eigs": {"int64", "float16", "extra_dim"},
                                     "grid": {"int64", "float16"},
                                     "density": {"int64", "float16"}}),
    "rmt.lambda_quantiles": Spec(call("F.lam", 5), sizes=("num",)),
    "rmt.marchenko_pastur_atom": Spec(call(2.0), positive=("ratio",)),
    "rmt.sample_covariance_eigenvalues": Spec(call(3, 10, num_samples=2, seed=0),
                                              sizes=("d", "N", "num_samples")),
    "rmt.stieltjes_along_t": Spec(call(20, 4, 3, ts=[0.0, 1.0], zeta=[1 + 0.5j],
                                       num_samples=2, num_ref=40, seed=0),
                                  sizes=("N", "d", "C", "num_samples", "num_ref")),
    "rmt.swap_projection": Spec(call("F.X", "F.X", "F.V.T")),
    "rmt.weighted_gram": Spec(call("F.X", torch.ones(6, dtype=torch.float64))),
    "rmt.wigner_eigenvalues": Spec(call(5, num_samples=2, seed=0), sizes=("n", "num_samples")),
    "spectral.union_grid": Spec(lambda F: (([F.spectrum, F.spectrum],), {})),
    "spectral.full_spectrum": Spec(call("F.net", "F.X", "F.y", num_steps=2, num_probes=1),
                                   sizes=("num_steps", "num_probes")),
    "spectral.js_estimate": Spec(call(BAD), only=("first",)),
    "spectral.scaled_spectrum": Spec(call("F.spectrum", sigma_rel=0.05), positive=("sigma_rel",)),
    "spectral.spectrum_distance": Spec(call("F.spectrum", "F.spectrum")),
    "spectral.tail_masses": Spec(call("F.spectrum", rel=0.05), positive=("rel",)),
    "spectral.blockwise_spectra_from_file": Spec(call(BAD), only=("path",)),
    "train.adam_flat": Spec(call(lambda t: (t * t).sum(), torch.ones(3, dtype=torch.float64),
                                 lr=0.1, steps=2), sizes=("steps",), positive=("lr",)),
    "train.checkpoint_steps": Spec(call(10, (0.0, 0.5, 1.0)), sizes=("steps",)),
    "train.compare_adam_speed": Spec(call("F.net", "F.X", "F.y", steps=2, repeats=1),
                                     sizes=("steps", "repeats"), choices=("loss",)),
    "train.optimizer_state_numel": Spec(call("F.layout", "adam"), choices=("method",)),
    "train.paper_quadratic": Spec(call(3, seed=0), choices=("case",)),
    "train.lr_grid_search": Spec(call(BAD, BAD, BAD, grids={"adam": [0.1]}, seeds=[0]),
                                 only=("make_model",)),
    "train.measured_quadratic": Spec(call(BAD), only=("spectra",)),
    "train.quadratic_report": Spec(call(BAD, 2, lrs=[0.1]), only=("problem",)),
    "train.r_trials": Spec(call(BAD, 2), only=("make_problem",)),
    "train.predicted_rate": Spec(call(10.0), positive=("kappa",)),
    "train.seed_spread": Spec(call([1.0, 2.0, 3.0])),
    "symbolic.linear_example": Spec(call(2, 2, 2), sizes=("d", "m", "C")),
    "symbolic.talk_example": Spec(call("1"), choices=("key",)),
    "symbolic.predicted_pattern": Spec(call(BAD), only=("ex",)),
    "symbolic.random_point": Spec(call(BAD), only=("ex",)),
    "symbolic.verify_example": Spec(call(BAD), only=("ex",)),
    "symbolic.hessian_latex": Spec(call(BAD), only=("ex",)),
    # the figure helpers: a wrong object where their data goes
    "plot.heatmap": Spec(call("F.H", "F.layout"), only=("H", "layout")),
    "plot.block_norm_map": Spec(call("F.H"), only=("norms",)),
    "plot.coupling_map": Spec(call(BAD), only=("rho",)),
    "plot.hessian_summary": Spec(call(BAD), only=("summary",)),
    "plot.snapshot": Spec(call(BAD), only=("snap",)),
    "plot.snapshot_gif": Spec(call(BAD), only=("snaps",)),
    "plot.deep_snapshot": Spec(call(BAD), only=("snap",)),
    "plot.gif_html": Spec(call(BAD), only=("gif",)),
    "plot.block_spectra": Spec(call(BAD), only=("result",)),
    "plot.js_heatmap": Spec(call(BAD), only=("result",)),
    "plot.link_matrix": Spec(call(BAD), only=("ex",)),
    "plot.links": Spec(call(BAD), only=("ex",)),
    "plot.network": Spec(call(BAD), only=("ex",)),
    "plot.pattern": Spec(call(BAD, "F.H"), only=("ex",)),
    "plot.ratio_vs_c": Spec(call(BAD, "F.ratios", label="x"), only=("Cs",)),
    "plot.spectrum_histogram": Spec(call(None, BAD), only=("eigs",)),
    "plot.sweep": Spec(call(BAD, "case2_vv", ax=None, label="x", color="k"), only=("result",)),
}  # fmt: skip

#: Callables of ``hl.API_GROUPS`` that are not entry points for data: result records the
#: library returns (frozen dataclasses, built by the functions that check their inputs) and
#: functions without arguments.
NOT_ENTRY_POINTS = {
    "HessianBlocks": "a result record (closed_form_blocks returns it)",
    "BlockStats": "a result record (block_stats returns it)",
    "BlockRatios": "a result record (block_ratios_at_init returns it)",
    "SlopeFit": "a result record (fit_slope returns it)",
    "Spectrum": "a result record (slq_density returns it)",
    "Eigenpairs": "a result record (top_eigenpairs returns it)",
    "BlockwiseSpectra": "a result record (blockwise_spectra returns it)",
    "default_device": "takes no argument",
    "nets.zen_text": "takes no argument",
}


def _notebook_calls() -> set[str]:
    found = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        found |= {
            f"{a}.{b}" for a, b in re.findall(r"hl\.([a-z_]+)\.([a-z_]+)\(", path.read_text())
        }
    return found


def public_functions() -> list[str]:
    """The curated callables and the subpackage functions the chapters call."""
    curated = [n for g in hl.API_GROUPS.values() for n in g if callable(getattr(hl, n))]
    return curated + sorted(_notebook_calls() - set(curated))


def _resolve(name: str):
    obj = hl
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_public_function_has_a_spec():
    missing = [n for n in public_functions() if n not in SPECS and n not in NOT_ENTRY_POINTS]
    assert not missing, f"add a fuzz spec (or a reasoned exemption) for: {missing}"


# ---------------------------------------------------------------------------- the bad values
def _spoiled(name: str, value: Any, spec: Spec) -> list[tuple[str, Any]]:
    """``(mutation, bad value)`` pairs for the argument ``name`` whose valid value is ``value``."""
    if spec.only is not None:
        return [("type", BAD)] if name in spec.only else []
    out: list[tuple[str, Any]] = []
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            nan = value.detach().clone(memory_format=torch.contiguous_format)
            nan.view(-1)[0] = math.nan
            out += [("nan", nan), ("int64", value.detach().to(torch.int64))]
            out += [("float16", value.detach().half())]
        else:
            out += [("float", value.to(torch.float64))]
        out += [("extra_dim", value.detach().unsqueeze(0)), ("type", BAD)]
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if name in spec.sizes:
            out += [("zero", 0), ("negative", -1)]
        elif name == "seed":
            out += [("negative", -1)]
        out += [("type", BAD)]
    elif isinstance(value, float):
        out += [("nan", math.nan), ("type", BAD)]
        out += [("negative", -1.0)] if name in spec.positive else []
    elif isinstance(value, str):
        out += [("unknown", "no-such-choice")] if name in spec.choices else []
    elif isinstance(value, torch.dtype):
        out += [("int64", torch.int64), ("float16", torch.float16)]
    elif isinstance(value, list | tuple) and value and all(type(v) is float for v in value):
        out += [("nan", [math.nan] * len(value)), ("type", BAD)]
    elif not isinstance(value, list | tuple | dict | complex):
        out += [("type", BAD)]  # a model, a layout, a callable, a result object
    return [(m, v) for m, v in out if m not in spec.accepts.get(name, set())]


def _bind(fn, args: tuple, kwargs: dict):
    import inspect

    return inspect.signature(fn).bind(*args, **kwargs)


def _outcome(fn, bound, name: str) -> str | None:
    """``None`` when the call raised a clear error naming ``name``, else what went wrong."""
    try:
        out = fn(*bound.args, **bound.kwargs)
    except (ValueError, TypeError) as err:
        if re.search(rf"\b{re.escape(name)}\b", str(err)):
            return None
        return f"{type(err).__name__} without naming {name!r}: {str(err)[:160]}"
    except Exception as err:
        return f"raw {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
    nan = isinstance(out, torch.Tensor) and out.is_floating_point() and out.isnan().any()
    return "returned NaN" if nan else "accepted it"


def _params():
    for name in public_functions():
        if name in NOT_ENTRY_POINTS:
            continue
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("name", _params())
def test_bad_input_is_refused_naming_the_argument(name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = SPECS[name]
    fn = _resolve(name)
    args, kwargs = spec.call(inputs())
    bound = _bind(fn, args, kwargs)
    if spec.only is None:  # the valid call works and gives no NaN
        out = fn(*bound.args, **bound.kwargs)
        assert not (isinstance(out, torch.Tensor) and out.is_floating_point() and out.isnan().any())
    failures = []
    for arg, value in list(bound.arguments.items()):
        for mutation, bad in _spoiled(arg, value, spec):
            spoilt = _bind(fn, args, kwargs)
            spoilt.arguments[arg] = bad
            problem = _outcome(fn, spoilt, arg)
            if problem:
                failures.append(f"{arg}={mutation}: {problem}")
    plt.close("all")
    assert not failures, f"hl.{name}: " + "; ".join(failures)
