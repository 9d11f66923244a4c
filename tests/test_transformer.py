"""The tiny transformer of chapter 06: exact Hessian, block layouts, token data."""

from __future__ import annotations

import pytest
import torch

import hesslib as hl


@pytest.fixture(scope="module")
def zen_tokens():
    return hl.nets.char_tokens(hl.nets.zen_text(), vocab_size=16)


def test_zen_text_is_decoded():
    text = hl.nets.zen_text()
    assert text.startswith("The Zen of Python, by Tim Peters")
    assert "Beautiful is better than ugly." in text
    assert len(text) == 856


def test_char_tokens_vocabulary(zen_tokens):
    tokens, alphabet = zen_tokens
    assert len(alphabet) == 16 and alphabet[-1] == "<other>" and alphabet[0] == " "
    assert tokens.dtype == torch.long and int(tokens.max()) == 15 and int(tokens.min()) == 0
    assert tokens.numel() == len(hl.nets.zen_text())
    full, chars = hl.nets.char_tokens(hl.nets.zen_text())
    assert len(chars) == int(full.max()) + 1 == 32  # every lowercase character keeps its id
    assert torch.equal(
        hl.nets.char_tokens(hl.nets.zen_text(), vocab_size=16)[0], tokens
    )  # deterministic


def test_token_windows_shift(zen_tokens):
    tokens, _ = zen_tokens
    data = hl.nets.token_windows(tokens, 3, num=5, vocab_size=16, device="cpu")
    assert data.X.shape == (5, 3) and data.y.shape == (15,)
    Y = data.y.reshape(5, 3)
    assert torch.equal(data.X[:, 1:], Y[:, :-1])  # targets are the inputs shifted by one
    with pytest.raises(ValueError, match="num"):
        hl.nets.token_windows(tokens, 3, num=10_000)
    with pytest.raises(ValueError, match="too few"):
        hl.nets.token_windows(tokens[:3], 3)


def _tiny(num_layers, windows=40, seed=0):
    tokens, _ = hl.nets.char_tokens(hl.nets.zen_text(), vocab_size=16)
    data = hl.nets.token_windows(tokens, 2, num=windows, vocab_size=16, device="cpu")
    model = hl.nets.gpt(16, num_layers=num_layers, seed=seed, device="cpu")
    return model, data


@pytest.mark.parametrize("num_layers", [1, 2])
def test_full_hessian_matches_torch_func(num_layers):
    model, data = _tiny(num_layers)
    f, theta = hl.flat_loss(model, data.X, data.y, "ce")
    H = hl.full_hessian(f, theta)
    H_ref = hl.hessian_reference(f, theta)
    assert H.shape == (theta.numel(), theta.numel())
    assert float((H - H_ref).abs().max()) <= 1e-10 * float(H_ref.abs().max())
    assert float((H - H.T).abs().max()) <= 1e-12 * float(H.abs().max())


def test_layouts_follow_parameter_order():
    model, _ = _tiny(2)
    mod, head = hl.nets.gpt_layout(model), hl.nets.gpt_layout(model, by="head")
    P = sum(p.numel() for p in model.parameters())
    assert mod.num_params == head.num_params == P == 72 + 2 * 96 + 64
    assert mod.names[:4] == ("wte", "wpe", "L0.Q", "L0.K") and mod.names[-1] == "lm_head"
    assert head.num_blocks == mod.num_blocks + 2 * 4  # Q, K, V, O split into 2 heads each
    # the flat vector's slice of block "L1.Q1" is head 1 of layer 1's query weights
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    i = head.names.index("L1.Q1")
    sl = slice(head.offsets[i], head.offsets[i + 1])
    assert torch.equal(theta[sl], model.layers[1].q.detach()[1].reshape(-1))
    assert [g for g, _, _ in mod.groups] == ["embed", "L0", "L1", "head"]


def test_attention_is_causal():
    model = hl.nets.gpt(
        10, context=5, width=8, num_heads=2, mlp_width=8, num_layers=2, layernorm=True, device="cpu"
    )
    X = torch.randint(0, 10, (3, 5), generator=torch.Generator().manual_seed(0))
    X2 = X.clone()
    X2[:, -1] = (X2[:, -1] + 1) % 10  # change only the last token
    out, out2 = model(X).reshape(3, 5, 10), model(X2).reshape(3, 5, 10)
    assert torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-12)
    assert not torch.allclose(out[:, -1], out2[:, -1])


def test_gpt2_init_scale_and_errors():
    model = hl.nets.gpt(
        20, width=8, num_heads=2, mlp_width=16, num_layers=3, init="gpt2", device="cpu"
    )
    std = model.wte.detach().std()
    assert 0.015 < float(std) < 0.025
    assert float(model.layers[0].o.detach().std()) < float(std) / 2  # 0.02 / sqrt(2 L)
    with pytest.raises(ValueError, match="init"):
        hl.nets.gpt(10, init="xavier")
    with pytest.raises(ValueError, match="divisible"):
        hl.nets.gpt(10, width=6, num_heads=4)
    with pytest.raises(ValueError, match="long tensor"):
        model(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="context"):
        hl.nets.gpt(10, context=2, device="cpu")(torch.zeros(1, 3, dtype=torch.long))


def test_meta_device_layout_needs_no_memory():
    with torch.device("meta"):
        big = hl.nets.GPT(50257, 1024, 768, 12, 3072, 12, layernorm=True)
    lay = hl.nets.gpt_layout(big, by="head")
    assert lay.num_params == 162_915_840  # untied embeddings and LM head, no biases
    assert lay.num_blocks == 2 + 12 * (4 * 12 + 2) + 1


def test_adam_mini_partition():
    model, _ = _tiny(2)
    ids = hl.nets.adam_mini_blocks(model)
    P = sum(p.numel() for p in model.parameters())
    assert ids.shape == (P,) and ids.dtype == torch.long
    assert (
        int(ids.max()) + 1
        == hl.nets.adam_mini_num_blocks(model)
        == 16 + 2 + 2 * (2 + 2 + 4 + 4 + 4 + 4) + 16
    )
    # the output projection's blocks are output neurons: O[:, :, d] for each d
    off = sum(
        p.numel()
        for p in (model.wte, model.wpe, model.layers[0].q, model.layers[0].k, model.layers[0].v)
    )
    o_ids = ids[off : off + 16].reshape(2, 2, 4)
    assert all(len(set(o_ids[:, :, d].reshape(-1).tolist())) == 1 for d in range(4))
    assert len(set(o_ids[0, 0].tolist())) == 4


def test_lm_head_inputs_give_the_logits():
    net = hl.nets.gpt(11, context=3, width=8, num_heads=2, mlp_width=8, num_layers=2,
                      layernorm=True, init="gpt2", seed=1, device="cpu")  # fmt: skip
    X = torch.randint(0, 11, (5, 3), generator=hl.make_generator(0))
    A = hl.chapters.llm_implications.lm_head_inputs(net, X)
    assert A.shape == (15, 8)
    assert torch.allclose(A @ net.lm_head.detach().T, net(X).detach(), atol=1e-12)


def test_pairing_masses_rank_the_papers_boxes():
    ch = hl.chapters.llm_implications
    net = hl.nets.gpt(16, num_layers=2, seed=0, device="cpu")
    layout = hl.nets.gpt_layout(net, by="module")
    B = layout.num_blocks
    norms = torch.eye(B, dtype=torch.float64)  # diagonal blocks only ...
    for layer in ("L0", "L1"):  # ... plus the couplings of the paper's boxes
        for a, b in ch.PAPER_PAIRING:
            i, j = layout.names.index(f"{layer}.{a}"), layout.names.index(f"{layer}.{b}")
            norms[i, j] = norms[j, i] = 1.0
    masses = ch.pairing_masses(norms, layout)
    assert len(masses) == 15 and next(iter(masses)) == ch.PAPER_PAIRING
    assert masses[ch.PAPER_PAIRING] == pytest.approx(1.0)  # everything inside the boxes
    other = (("Q", "V"), ("K", "O"), ("fc_in", "fc_out"))
    # the 12 diagonal blocks count for every pairing; one of three pair couplings remains
    assert masses[other] == pytest.approx((12 + 2 * 2) / (12 + 2 * 6))
    assert all(len({x for p in k for x in p}) == 6 for k in masses)  # real pairings
