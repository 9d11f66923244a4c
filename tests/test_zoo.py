"""One table of the chapter-06 SLQ models, read by the chapter and by ``hesslib.cli``.

The point of :mod:`hesslib.zoo`: a spectra file written by ``python -m hesslib.cli slq`` is of
exactly the model chapter 06 computes in-process, so the chapter may load it instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import hesslib as hl
from hesslib.distributed import cli

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "06_llm_implications.py"


@pytest.mark.parametrize("model", sorted(hl.nets.SPECTRA_MODELS))
@pytest.mark.parametrize("profile", ["quick", "default", "paper"])
def test_every_model_and_profile_has_the_same_settings(model, profile):
    table = hl.nets.SPECTRA_MODELS[model]
    assert set(table[profile]) == set(table["quick"])
    cfg = hl.nets.spectra_settings(model, profile)
    assert cfg.model == model and cfg.profile == profile
    assert cfg.steps >= 1 and cfg.probes >= 1


@pytest.mark.parametrize("model", sorted(hl.nets.SPECTRA_MODELS))
def test_quick_problems_build_and_are_seeded(model):
    cfg = hl.nets.spectra_settings(model, "quick")
    a = hl.nets.spectra_problem(cfg, seed=3, device="cpu")
    b = hl.nets.spectra_problem(cfg, seed=3, device="cpu")
    c = hl.nets.spectra_problem(cfg, seed=4, device="cpu")
    theta = [torch.cat([p.detach().reshape(-1) for p in pb.net.parameters()]) for pb in (a, b, c)]
    assert torch.equal(theta[0], theta[1]) and not torch.equal(theta[0], theta[2])
    assert a.layout.num_params == theta[0].numel()
    assert a.data.X.shape[0] == (cfg.N if cfg.N is not None else a.data.X.shape[0])
    assert theta[0].dtype == torch.float32  # the chapter's precision by default


def test_gpt_is_the_chapters_gpt():
    """LayerNorm on, GPT-2 initialisation, the Zen of Python by characters (all of them)."""
    cfg = hl.nets.spectra_settings("gpt", "default")
    pb = hl.nets.spectra_problem(cfg, seed=0, device="cpu")
    tokens, alphabet = hl.nets.char_tokens(hl.nets.zen_text())
    ref = hl.nets.gpt(
        len(alphabet),
        context=16,
        width=64,
        num_heads=4,
        mlp_width=128,
        num_layers=2,
        layernorm=True,
        init="gpt2",
        seed=0,
        dtype=torch.float32,
    )
    for (n, p), (m, q) in zip(pb.net.named_parameters(), ref.named_parameters(), strict=True):
        assert n == m and torch.equal(p, q), n
    assert pb.data.name.startswith("Zen of Python") and pb.data.X.shape == (cfg.N, cfg.context)
    windows = hl.nets.token_windows(tokens, 16, num=32, vocab_size=len(alphabet))
    assert torch.equal(pb.data.X, windows.X) and torch.equal(pb.data.y, windows.y)


def test_bad_model_profile_setting_and_partition_are_named():
    with pytest.raises(ValueError, match="model must be one of"):
        hl.nets.spectra_settings("resnet", "quick")
    with pytest.raises(ValueError, match="profile must be one of"):
        hl.nets.spectra_settings("gpt", "huge")
    with pytest.raises(ValueError, match="unknown setting 'layers'"):
        hl.nets.spectra_settings("gpt", "quick", layers=3)
    cfg = hl.nets.spectra_settings("cnn", "quick")
    with pytest.raises(ValueError, match="partition must be one of"):
        hl.nets.spectra_problem(cfg, partition="rows")
    with pytest.raises(ValueError, match="spectra_settings"):
        hl.nets.spectra_problem(hl.resolve_profile("quick", {"quick": {"N": 3}}, verbose=False))


def test_chapter_06_reads_the_shared_table_and_has_no_copy_of_it():
    src = CHAPTER.read_text(encoding="utf-8")
    assert re.search(r"hl\.nets\.spectra_settings\(\s*model,\s*profile", src)
    assert "hl.nets.spectra_problem(" in src
    # no second copy of the SLQ models' settings in the chapter
    for key in ("gpt_windows", "cnn_channels", "cnn_images", "slq_chunk"):
        assert not re.search(rf"\b{key}\s*=", src), key


@pytest.fixture(scope="module")
def cli_file(tmp_path_factory):
    """Spectra of the quick GPT from the command line, one process, the chapter's float32."""
    out = tmp_path_factory.mktemp("cli") / "gpt_quick.pt"
    argv = ["slq", "--model", "gpt", "--profile", "quick", "--dtype", "float32", "--seed", "1"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    return out


def test_cli_file_is_the_chapters_computation(cli_file):
    """What the chapter computes in-process equals what it loads from the CLI's file."""
    cfg = hl.nets.spectra_settings("gpt", "quick")
    pb = hl.nets.spectra_problem(cfg, seed=1, device="cpu")
    here = hl.blockwise_spectra(
        pb.net, pb.data.X, pb.data.y, pb.layout, num_steps=cfg.steps, num_probes=cfg.probes, seed=1
    )
    expect = hl.nets.spectra_file_settings(cfg, seed=1)
    assert "chunk_size" not in expect and expect["partition"] == "module"
    loaded = hl.spectral.blockwise_spectra_from_file(cli_file, expect=expect, names=pb.layout.names)
    assert loaded.names == here.names
    for a, b in zip(loaded.spectra, here.spectra, strict=True):
        assert float((a.grid - b.grid).abs().max()) <= 1e-5 * float(b.grid.abs().max())
        assert float((a.density - b.density).abs().max()) <= 1e-4 * float(b.density.max())
    assert abs(loaded.js0 - here.js0) < 1e-4


def test_a_file_of_another_model_is_refused(cli_file):
    cfg = hl.nets.spectra_settings("gpt", "quick")
    with pytest.raises(ValueError, match=r"seed: file has 1, expected 0"):
        hl.spectral.blockwise_spectra_from_file(
            cli_file, expect=hl.nets.spectra_file_settings(cfg, seed=0)
        )
    wider = hl.nets.spectra_settings("gpt", "quick", width=32)
    with pytest.raises(ValueError, match=r"width: file has 16, expected 32"):
        hl.spectral.blockwise_spectra_from_file(
            cli_file, expect=hl.nets.spectra_file_settings(wider, seed=1)
        )
    with pytest.raises(ValueError, match="expected \\['a', 'b'\\]"):
        hl.spectral.blockwise_spectra_from_file(cli_file, names=["a", "b"])
    saved = hl.spectral.load_block_spectra(cli_file)
    saved.check_settings({"model": "gpt", "context": 8, "N": 8, "dtype": "float32"})  # matches
    with pytest.raises(ValueError, match="channels: file has '<missing>'"):
        saved.check_settings({"channels": (4, 4)})
