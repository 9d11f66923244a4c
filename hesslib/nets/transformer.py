r"""A decoder-only transformer small enough for exact Hessians, and character-level token data.

The model follows minGPT/nanoGPT without biases: token and position embeddings, ``L`` blocks of
causal multi-head attention and a two-layer MLP on a residual stream, an LM head. LayerNorm (no
learnable parameters) is optional: the tiny model with which "Why Transformers Need Adam" shows a
near-block-diagonal transformer Hessian (context 2, 2 heads, width 4, MLP width 4) omits it,
the GPT used for SLQ keeps it.

Parameter order (the order of ``named_parameters`` and of the flat vector)::

    wte (V, D) | wpe (T, D) | per layer l: Q, K, V, O (each (n_head, D/n_head, D)),
    fc_in (M, D), fc_out (D, M) | LM head (V, D)

(``named_parameters`` lists a module's own parameters before its submodules', so the LM head
lives in a submodule ``head`` registered after the layers; :func:`gpt_layout` is built from
``named_parameters`` itself.)

Q, K, V and O are stored per head, so every head's block is a contiguous slice of the flat
vector: head ``h`` of O is the ``(D/n_head, D)`` map from that head's output to the stream.

Token data: the Zen of Python (the text of the standard-library module ``this``, stored there
ROT13-encoded; it is decoded from the source file, without importing the module, which would
print it), lowercased and tokenised by characters.
"""

from __future__ import annotations

import ast
import codecs
import importlib.util
import math
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from ..core.blocks import BlockLayout
from ..core.checks import check_device, check_positive_int, check_type
from ..core.data import Dataset
from ..core.device import default_device, make_generator

__all__ = [
    "GPT",
    "GPT_INITS",
    "adam_mini_blocks",
    "adam_mini_num_blocks",
    "char_tokens",
    "gpt",
    "gpt_layout",
    "token_windows",
    "zen_text",
]

GPT_INITS = ("lecun", "gpt2")


def zen_text() -> str:
    """The Zen of Python (PEP 20), decoded from the standard library's ``this.py`` (ROT13).

    Returns:
        The 856-character text, with its title line.
    """
    spec = importlib.util.find_spec("this")
    if spec is None or spec.origin is None:  # pragma: no cover - the module is always there
        raise RuntimeError("the standard-library module 'this' was not found")
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "s":
            return codecs.decode(ast.literal_eval(node.value), "rot13")
    raise RuntimeError("this.py has no string 's'")  # pragma: no cover


def char_tokens(
    text: str, *, vocab_size: int | None = None, lower: bool = True
) -> tuple[torch.Tensor, list[str]]:
    """Character tokenisation, most frequent characters first.

    Args:
        text: the corpus.
        vocab_size: keep the ``vocab_size − 1`` most frequent characters and map every other
            character to one extra token ``"<other>"`` (default: keep all characters).
        lower: lowercase first.

    Returns:
        ``(tokens, alphabet)``: a long tensor ``(len(text),)`` and the character of each id.
    """
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError("text must be a string of at least 2 characters")
    text = text.lower() if lower else text
    # ties broken by the character itself so the ids are deterministic
    chars = [c for c, _ in sorted(Counter(text).items(), key=lambda kv: (-kv[1], kv[0]))]
    if vocab_size is not None:
        check_positive_int("vocab_size", vocab_size, minimum=2)
        if vocab_size < len(chars):
            chars = chars[: vocab_size - 1] + ["<other>"]
    index = {c: i for i, c in enumerate(chars)}
    other = len(chars) - 1
    ids = [index.get(c, other) for c in text]
    return torch.tensor(ids, dtype=torch.long), chars


def _check_tokens(tokens: object, vocab_size: object) -> None:
    """Raise unless ``tokens`` is a 1-D tensor of ids in ``[0, vocab_size)`` (when given)."""
    check_type("tokens", tokens, torch.Tensor, "a 1-D tensor of token ids")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.ndim != 1:
        raise ValueError(f"tokens must have shape (n,), got {tuple(tokens.shape)}")
    if vocab_size is not None:
        check_positive_int("vocab_size", vocab_size, minimum=2)
    lo, hi = (int(tokens.min()), int(tokens.max())) if tokens.numel() else (0, 0)
    if lo < 0 or (vocab_size is not None and hi >= vocab_size):
        raise ValueError(f"tokens must be ids in [0, vocab_size={vocab_size}), got [{lo}, {hi}]")


def token_windows(
    tokens: torch.Tensor,
    context: int,
    *,
    num: int | None = None,
    vocab_size: int | None = None,
    device: torch.device | str | None = None,
    name: str = "tokens",
) -> Dataset:
    """Next-token prediction windows: inputs ``t[i : i+T]``, targets ``t[i+1 : i+T+1]``.

    Args:
        tokens: token ids ``(n,)``.
        context: window length ``T``.
        num: number of windows, spread evenly over the text (default: every start position).
        vocab_size: number of token ids (default ``max(tokens) + 1``).
        device: where the tensors live.
        name: description for figure titles.

    Returns:
        A :class:`~hesslib.Dataset` with ``X`` of shape ``(N, T)`` (long) and ``y`` of shape
        ``(N·T,)``, the targets flattened in the order of :meth:`GPT.forward`'s logits.
    """
    _check_tokens(tokens, vocab_size)
    check_positive_int("context", context)
    n_start = tokens.numel() - context
    if n_start < 1:
        raise ValueError(f"the text has {tokens.numel()} tokens, too few for context {context}")
    num = n_start if num is None else check_positive_int("num", num)
    if num > n_start:
        raise ValueError(f"num must be <= {n_start} (windows available), got {num}")
    starts = torch.linspace(0, n_start - 1, num).round().long()  # (N,)
    idx = starts[:, None] + torch.arange(context + 1)  # (N, T + 1)
    win = tokens[idx]
    V = int(tokens.max()) + 1 if vocab_size is None else vocab_size
    device = check_device("device", device) or default_device()
    X, y = win[:, :-1].to(device), win[:, 1:].reshape(-1).to(device)  # (N, T), (N·T,)
    return Dataset(X, y, V, name=f"{name}: {num} windows of {context}")


class _Block(nn.Module):
    """One pre-norm transformer block: causal multi-head attention, then a GELU MLP."""

    def __init__(self, width: int, num_heads: int, mlp_width: int, layernorm: bool):
        super().__init__()
        dh = width // num_heads
        self.q = nn.Parameter(torch.empty(num_heads, dh, width))
        self.k = nn.Parameter(torch.empty(num_heads, dh, width))
        self.v = nn.Parameter(torch.empty(num_heads, dh, width))
        self.o = nn.Parameter(torch.empty(num_heads, dh, width))
        self.fc_in = nn.Parameter(torch.empty(mlp_width, width))
        self.fc_out = nn.Parameter(torch.empty(width, mlp_width))
        self.layernorm = layernorm

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) if self.layernorm else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        h = self._norm(x)
        q = torch.einsum("btd,hed->bhte", h, self.q)  # (B, H, T, dh)
        k = torch.einsum("btd,hed->bhte", h, self.k)
        v = torch.einsum("btd,hed->bhte", h, self.v)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, T, T)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        z = att @ v  # (B, H, T, dh)
        x = x + torch.einsum("bhte,hed->btd", z, self.o)
        h = self._norm(x)
        return x + F.gelu(h @ self.fc_in.T) @ self.fc_out.T


class GPT(nn.Module):
    """Decoder-only transformer; ``forward`` maps tokens ``(N, T)`` to logits ``(N·T, V)``.

    Logits are flattened over positions so that ``hl.flat_loss(model, X, y, "ce")`` is the mean
    next-token cross-entropy over all ``N·T`` positions with the targets of
    :func:`token_windows`.
    """

    def __init__(
        self,
        vocab_size: int,
        context: int,
        width: int,
        num_heads: int,
        mlp_width: int,
        num_layers: int,
        *,
        layernorm: bool = False,
    ):
        super().__init__()
        for name, val in [
            ("vocab_size", vocab_size),
            ("context", context),
            ("width", width),
            ("num_heads", num_heads),
            ("mlp_width", mlp_width),
        ]:
            check_positive_int(name, val)
        check_positive_int("num_layers", num_layers, minimum=0)
        if width % num_heads:
            raise ValueError(f"width ({width}) must be divisible by num_heads ({num_heads})")
        self.config = dict(
            vocab_size=vocab_size,
            context=context,
            width=width,
            num_heads=num_heads,
            mlp_width=mlp_width,
            num_layers=num_layers,
            layernorm=layernorm,
        )
        self.wte = nn.Parameter(torch.empty(vocab_size, width))
        self.wpe = nn.Parameter(torch.empty(context, width))
        self.layers = nn.ModuleList(
            _Block(width, num_heads, mlp_width, layernorm) for _ in range(num_layers)
        )
        # a submodule registered after the layers, so that named_parameters() (own parameters
        # first, then submodules in registration order) lists it last
        self.head = nn.Linear(width, vocab_size, bias=False)

    @property
    def lm_head(self) -> nn.Parameter:
        """The LM-head weight ``(V, D)`` (parameter ``head.weight``)."""
        return self.head.weight

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.ndim != 2 or X.dtype != torch.long:
            raise ValueError(
                f"X must be a long tensor of token ids (N, T), got {X.dtype} {tuple(X.shape)}"
            )
        T = X.shape[1]
        if T > self.wpe.shape[0]:
            raise ValueError(f"sequence length {T} exceeds the context {self.wpe.shape[0]}")
        x = self.wte[X] + self.wpe[:T]  # (N, T, D)
        for block in self.layers:
            x = block(x)
        if self.config["layernorm"]:
            x = F.layer_norm(x, x.shape[-1:])
        return (x @ self.lm_head.T).reshape(-1, self.lm_head.shape[0])  # (N·T, V)


def gpt(
    vocab_size: int,
    *,
    context: int = 2,
    width: int = 4,
    num_heads: int = 2,
    mlp_width: int = 4,
    num_layers: int = 1,
    layernorm: bool = False,
    init: str = "lecun",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> GPT:
    """A :class:`GPT` with seeded initialisation; defaults: the tiny model of "Why Transformers
    Need Adam" (context 2, 2 heads, width 4, MLP width 4, no LayerNorm).

    Args:
        vocab_size: number of token ids ``V``.
        context, width, num_heads, mlp_width, num_layers, layernorm: architecture.
        init: ``"lecun"``: matrices ``N(0, 1/fan_in)``, embeddings ``N(0, 1)`` (the book's
            convention); ``"gpt2"``: nanoGPT's ``N(0, 0.02²)`` everywhere, with the residual
            outputs (O, fc_out) scaled by ``1/√(2L)``.
        seed: seed of the initialisation.
        device: device (default :func:`hesslib.default_device`).
        dtype: parameter dtype.
    """
    if init not in GPT_INITS:
        raise ValueError(f"init must be one of {GPT_INITS}, got {init!r}")
    model = GPT(vocab_size, context, width, num_heads, mlp_width, num_layers, layernorm=layernorm)
    gen = make_generator(seed)
    resid = 1.0 / math.sqrt(2 * max(num_layers, 1))
    for name, p in model.named_parameters():
        fan_in = p.shape[-1]
        if init == "gpt2":
            std = 0.02 * (resid if name.endswith((".o", ".fc_out")) else 1.0)
        elif name in ("wte", "wpe"):
            std = 1.0
        elif name.endswith(".o"):
            std = 1.0 / math.sqrt(p.shape[0] * p.shape[1])  # fan-in of O is the stream width
        else:
            std = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)
    device = torch.device(device) if device is not None else default_device()
    return model.to(device=device, dtype=dtype)


def gpt_layout(model: GPT, *, by: str = "module") -> BlockLayout:
    """Block layout of a :class:`GPT`'s flat parameter vector.

    Args:
        model: the transformer.
        by: ``"module"`` — one block per parameter tensor (wte, wpe, then ``L{l}.Q``, ``.K``,
            ``.V``, ``.O``, ``.fc_in``, ``.fc_out`` per layer, lm_head): the "default PyTorch
            partition" of the paper; ``"head"`` — Q, K, V, O split further into one block
            per attention head (``L{l}.Q{h}`` …).

    Returns:
        A :class:`~hesslib.BlockLayout` with groups ``embed``, ``L0`` … ``L{n−1}``, ``head``.
    """
    check_type("model", model, GPT, "a hesslib.nets.GPT")
    if by not in ("module", "head"):
        raise ValueError(f"by must be 'module' or 'head', got {by!r}")
    H = model.config["num_heads"]
    named: list[tuple[str, int]] = []
    groups: list[tuple[str, int, int]] = []
    # built from named_parameters() itself, so the blocks follow the flat vector's order
    for pname, p in model.named_parameters():
        parts = pname.split(".")
        if parts[0] == "layers":
            group, label = (
                f"L{parts[1]}",
                {"q": "Q", "k": "K", "v": "V", "o": "O"}.get(parts[2], parts[2]),
            )
            name = f"{group}.{label}"
        else:
            group = "head" if parts[0] == "head" else "embed"
            name = "lm_head" if parts[0] == "head" else parts[0]
        if not groups or groups[-1][0] != group:
            groups.append((group, len(named), len(named)))
        if by == "head" and parts[0] == "layers" and parts[2] in ("q", "k", "v", "o"):
            named += [(f"{name}{h}", p.numel() // H) for h in range(H)]
        else:
            named.append((name, p.numel()))
        groups[-1] = (group, groups[-1][1], len(named))
    return BlockLayout(tuple(sz for _, sz in named), tuple(n for n, _ in named), tuple(groups))


def _mini_ids(name: str, shape: torch.Size) -> torch.Tensor:
    """Block ids within one parameter tensor under Adam-mini's partition."""
    last = name.split(".")[-1]
    if last in ("q", "k"):  # (H, dh, D): one block per head
        return torch.arange(shape[0])[:, None, None].expand(shape)
    if last == "v":  # (H, dh, D): one block per output neuron (h, e)
        return torch.arange(shape[0] * shape[1]).reshape(shape[0], shape[1], 1).expand(shape)
    if last == "o":  # (H, dh, D): output neuron d collects O[:, :, d]
        return torch.arange(shape[2])[None, None, :].expand(shape)
    # embeddings and LM head: one block per token / position; MLP: per output neuron (row)
    return torch.arange(shape[0])[:, None].expand(shape)


def adam_mini_blocks(model: GPT) -> torch.Tensor:
    """Block id of every entry of the flat parameter vector under the partition of Adam-mini
    (Zhang et al., ICLR 2025): query and key by head; value, output projection and MLP by
    output neuron; token/position embeddings and LM head by token/position.

    Returns:
        Long tensor ``(P,)`` with ids ``0 … B−1`` (see :func:`hesslib.train.adam_flat`).
    """
    check_type("model", model, GPT, "a hesslib.nets.GPT")
    ids, offset = [], 0
    for name, p in model.named_parameters():
        local = _mini_ids(name, p.shape).reshape(-1)
        ids.append(local + offset)
        offset += int(local.max()) + 1
    return torch.cat(ids)


def adam_mini_num_blocks(model: GPT) -> int:
    """Number of blocks of :func:`adam_mini_blocks`, from the shapes alone (works on the
    ``meta`` device, e.g. for a GPT-2-sized model)."""
    check_type("model", model, GPT, "a hesslib.nets.GPT")
    total = 0
    for name, p in model.named_parameters():
        last, s = name.split(".")[-1], p.shape
        if last == "v":
            total += s[0] * s[1]
        elif last == "o":
            total += s[2]
        else:  # q, k: heads; embeddings, MLP, LM head: rows
            total += s[0]
    return int(total)
