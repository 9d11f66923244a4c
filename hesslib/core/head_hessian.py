r"""Exact Hessians and HVPs of models that end in a linear head, assembled from its structure.

Logits :math:`z_r = W a_r + b` for each row ``r`` (sample or token position), :math:`W \in
\mathbb R^{C\times m}`, features :math:`a(\theta_b) \in \mathbb R^{R\times m}` from any body
(found by :func:`hesslib.core.linear_head.find_linear_head`), loss the mean of CE or MSE over
rows with :math:`g_r = \partial\ell/\partial z_r`, :math:`H_r = \partial^2\ell/\partial z_r^2`
(CE: :math:`(\operatorname{diag} p_r - p_r p_r^\top)/R`, MSE: :math:`I/R`). With
:math:`\bar a_r = (a_r, 1)` (the 1 only with a bias) and :math:`J_a = \partial a/\partial
\theta_b`:

.. math::

    H_{hh} = \sum_r H_r \otimes \bar a_r \bar a_r^\top, \qquad
    H_{b,(c,j)} = J_a^\top w^{cj},\quad w^{cj}_r = (H_r W)_{c,:}\,\bar a_{rj} + g_{rc}\,e_j,

and :math:`H_{bb}` is the Hessian of :math:`s(\theta_b) = \sum_r u_r^\top \delta_r + \tfrac12
\delta_r^\top G_r \delta_r` at :math:`\delta = a(\theta_b) - a(\theta_b^0) = 0`, with
:math:`u_r = W^\top g_r`, :math:`G_r = W^\top H_r W` — the loss's exact gradient and Hessian in
feature space (not Gauss-Newton: the body's own curvature enters through :math:`u`). For CE,
:math:`H_{hh} = \bigoplus_c \bar A^\top \operatorname{diag}(p_{:c}) \bar A / R - U^\top U / R`
with :math:`U_r = p_r \otimes \bar a_r`: one GEMM over the rows.

An HVP in direction :math:`(v_b, v_h)` is, with :math:`\dot a = J_a v_b` and
:math:`\dot z = \dot a W^\top + \bar A\, \dot W^\top`, :math:`\omega = H \dot z`:
head part :math:`\omega^\top \bar A + g^\top (\dot a, 0)`, body part
:math:`J_a^\top(\omega W + g \dot W) + \partial_{v_b}(J_a^\top u)` — about seven passes over
the :math:`R \times C` logits per direction, against dozens for ``jvp(grad(loss))``.
"""

from __future__ import annotations

import torch
from torch.func import grad, jvp, vjp, vmap

from .linear_head import HeadSplit, find_linear_head
from .workspace import HVP_BYTES_PER_FORWARD, forward_bytes, memory_budget, plan_chunk

__all__ = ["HeadTerms", "head_terms"]


def _as_slice(idx: torch.Tensor) -> slice | torch.Tensor:
    """``idx`` as a slice where it is a contiguous increasing range (then blocks are views)."""
    n = idx.numel()
    if n and int(idx[-1]) - int(idx[0]) == n - 1 and bool((idx.diff() == 1).all()):
        return slice(int(idx[0]), int(idx[0]) + n)
    return idx


def _put(H: torch.Tensor, rows, cols, block: torch.Tensor) -> None:
    if isinstance(rows, slice) and isinstance(cols, slice):
        H[rows, cols] = block
    else:
        r = torch.arange(H.shape[0], device=H.device)[rows]
        c = torch.arange(H.shape[1], device=H.device)[cols]
        H[r[:, None], c[None, :]] = block


class _RowMatvec(torch.autograd.Function):
    """``y_r = G_r d_r`` for every row ``r`` (``G`` constant, ``(R, m, m)``), with a ``vmap``
    rule that keeps the directions inside one batched GEMM per row: 4–25× faster than what
    ``vmap`` makes of ``einsum``/``bmm`` (it expands ``G`` once per direction)."""

    generate_vmap_rule = False

    @staticmethod
    def forward(G, d):
        return torch.bmm(d[:, None, :], G.mT)[:, 0, :]  # (R, m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.G = inputs[0]

    @staticmethod
    def backward(ctx, gy):
        return None, _RowMatvec.apply(ctx.G.mT, gy)

    @staticmethod
    def jvp(ctx, gG, gd):
        return _RowMatvec.apply(ctx.G, gd)

    @staticmethod
    def vmap(info, in_dims, G, d):
        if in_dims[0] is not None:  # G batched: never the case here; stay correct anyway
            G = G.movedim(in_dims[0], 0)
            if in_dims[1] is None:
                d = d.expand(G.shape[0], *d.shape)
            else:
                d = d.movedim(in_dims[1], 0)
            return torch.stack([_RowMatvec.apply(Gi, di) for Gi, di in zip(G, d)]), 0
        if in_dims[1] is None:
            return _RowMatvec.apply(G, d), None
        D = d.movedim(in_dims[1], 1).contiguous()  # (R, k, m): bmm loops over strided batches
        return torch.bmm(D, G.mT).transpose(0, 1), 0  # (k, R, m)


class HeadTerms:
    """Everything the structured Hessian and HVPs need at one point ``theta``.

    Attributes:
        split: the :class:`~hesslib.core.linear_head.HeadSplit`.
        a: features ``(R, m)``; ``abar``: with a column of ones if the head has a bias.
        Wc: the head weight as ``(C, m)``.
        p: softmax of the logits ``(R, C)`` (``None`` for MSE); ``g``: ``∂ℓ/∂z`` ``(R, C)``.
        coords: ``(C, m')`` position of ``W[c, j]`` (``b[c]`` at ``j = m``) in ``head_idx``.
        body_bytes: intermediates of one forward pass of the body.
    """

    def __init__(self, f, split: HeadSplit):
        head, dev = split.head, split.theta_b.device
        self.split = split
        self.a = split.body(split.theta_b).detach()  # (R, m)
        W = split.fixed[head.weight]
        self.Wc = W if head.out_in else W.T  # (C, m)
        z = self.a @ self.Wc.T  # (R, C)
        if head.bias is not None:
            z = z + split.fixed[head.bias]
        R, C = z.shape
        Y = torch.nn.functional.one_hot(f.y.reshape(-1), C).to(z.dtype)
        self.p = torch.softmax(z, dim=1) if f.loss == "ce" else None
        self.g = ((self.p if self.p is not None else z) - Y) / R
        ones = torch.ones_like(self.a[:, :1])
        self.abar = torch.cat([self.a, ones], dim=1) if head.bias is not None else self.a
        m = head.num_features
        c, j = torch.arange(C, device=dev)[:, None], torch.arange(m, device=dev)[None, :]
        coords = c * m + j if head.out_in else j * C + c
        if head.bias is not None:
            coords = torch.cat([coords, C * m + torch.arange(C, device=dev)[:, None]], dim=1)
        self.coords = coords
        tb = split.theta_b
        self.body_bytes = forward_bytes(split.body, tb) if tb.numel() else 0
        self.R, self.C, self.m, self.m1 = R, C, m, coords.shape[1]
        self.u = (self.Wc.T @ self.g.T).T  # (R, m): Wᵀ g_r, the loss's gradient in features
        self.PW = (self.Wc.T @ self.p.T).T if self.p is not None else None  # (R, m): Wᵀ p_r
        self._vjp = None

    # ----------------------------------------------------------------------------- HVPs
    def _body_tangents(self, Vb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``ȧ = J_a V_b`` ``(R, k, m)`` and ``∂_V (J_aᵀ u)`` ``(P_b, k)`` — the body's own
        second derivatives contracted with ``u = Wᵀ g`` — from one forward-over-reverse pass."""
        sp, tb, u = self.split, self.split.theta_b, self.u

        def pull(t):
            a = sp.body(t)
            return (u * a).sum(), a

        def tangents(v):
            return jvp(grad(pull, has_aux=True), (tb,), (v,))[1]

        curvature, da = vmap(tangents, in_dims=1, out_dims=(1, 1))(Vb)
        return da.contiguous(), curvature

    def _pullback(self, cot: torch.Tensor) -> torch.Tensor:
        """``J_aᵀ cot`` for cotangents ``(R, k, m)``: ``(P_b, k)``."""
        if self._vjp is None:
            self._vjp = vjp(self.split.body, self.split.theta_b)[1]
        return vmap(self._vjp, in_dims=1, out_dims=1)(cot)[0]

    def hvp(self, V: torch.Tensor) -> torch.Tensor:
        """``H V`` for a block ``V`` of shape ``(P, k)`` (module docstring); the ``(R, k, C)``
        logits tangent is formed once and read by GEMMs, about eight passes per direction."""
        sp, k, R, C, m, m1 = self.split, V.shape[1], self.R, self.C, self.m, self.m1
        dW = V[sp.head_idx][self.coords.reshape(-1)].T.reshape(k, C, m1)  # (k, C, m')
        dz = (self.abar @ dW.reshape(k * C, m1).T).view(R, k, C)  # ā_r·Ẇ_kc, bias included
        P_b = sp.body_idx.numel()
        if P_b:
            Vb = V[sp.body_idx]  # (P_b, k)
            da, curvature = self._body_tangents(Vb)  # (R, k, m), (P_b, k)
            dz.view(R * k, C).addmm_(da.view(R * k, m), self.Wc.T)  # + ȧ Wᵀ
        if self.p is not None:  # ω = (p ⊙ ż − p sᵀ)/R, s = p·ż: only p ⊙ ż is formed
            s = dz.mul_(self.p[:, None, :]).sum(dim=-1, keepdim=True)  # (R, k, 1)
        # skinny GEMMs with the small operand on the left: 3x faster reads of the logits
        out_h = (self.abar.T @ dz.view(R, k * C)).T.view(k, C, m1)
        if self.p is not None:
            ps = ((s * self.abar[:, None, :]).view(R, k * m1).T @ self.p).view(k, m1, C)
            out_h -= ps.transpose(1, 2)
        out_h /= R
        out = torch.empty_like(V)
        if P_b:
            out_h[..., :m] += (da.view(R, k * m).T @ self.g).view(k, m, C).transpose(1, 2)
            cot = (self.Wc.T @ dz.view(R * k, C).T).T.view(R, k, m)
            if self.p is not None:
                cot -= s * self.PW[:, None, :]
            cot /= R
            gdw = dW[..., :m].transpose(0, 1).reshape(C, k * m)  # (C, k·m)
            cot += (gdw.T @ self.g.T).T.view(R, k, m)  # g Ẇ
            out[sp.body_idx] = self._pullback(cot) + curvature
        flat = torch.empty(k, self.coords.numel(), dtype=V.dtype, device=V.device)
        flat[:, self.coords.reshape(-1)] = out_h.reshape(k, -1)
        out[sp.head_idx] = flat.T
        return out

    def hvp_bytes(self) -> int:
        """Work per direction of :meth:`hvp`."""
        item = self.a.element_size()
        P = self.split.body_idx.numel() + self.coords.numel()
        logits = 2 * self.R * self.C + 6 * self.R * self.m1 + 3 * P
        return item * logits + 3 * HVP_BYTES_PER_FORWARD * self.body_bytes

    # ----------------------------------------------------------------------- full Hessian
    def _head_block(self, Hhh: torch.Tensor, rows: int) -> None:
        """``Σ_r H_r ⊗ ā_r ā_rᵀ`` into ``Hhh`` (head coordinates in flat order)."""
        abar, p, R, C, m, m1 = self.abar, self.p, self.R, self.C, self.m, self.m1
        if p is None:
            D = (abar.T @ abar / R).expand(C, m1, m1)
        elif m1 * m1 <= C:  # (C, m'²) from one GEMM
            D = (p.T @ (abar[:, :, None] * abar[:, None, :]).reshape(R, -1)).reshape(C, m1, m1)
            D = D / R
        else:
            D = torch.stack([(abar * p[:, c : c + 1]).T @ abar for c in range(C)]) / R
        Hhh.zero_()
        idx = self.coords[:, :, None].expand(C, m1, m1), self.coords[:, None, :].expand(C, m1, m1)
        Hhh[idx] = D
        if p is None:
            return
        for r0 in range(0, R, rows):  # minus Uᵀ U / R, U_r = p_r ⊗ ā_r in flat order
            pr, ar = p[r0 : r0 + rows], abar[r0 : r0 + rows, :m]
            if self.split.head.out_in:  # W stored (C, m): column c·m + j
                U = (pr[:, :, None] * ar[:, None, :]).reshape(pr.shape[0], C * m)
            else:  # W stored (m, C): column j·C + c
                U = (ar[:, :, None] * pr[:, None, :]).reshape(pr.shape[0], C * m)
            if m1 > m:
                U = torch.cat([U, pr], dim=1)
            Hhh.addmm_(U.T, U, alpha=-1.0 / R)

    def _cross_block(self, H: torch.Tensor, k: int) -> None:
        """Body × head: column ``(c, j)`` is the body's VJP of ``w^{cj}``, ``k`` at a time."""
        sp, m, C, dev = self.split, self.m, self.C, self.a.device
        if self.p is None:
            K = (self.Wc / self.R).expand(self.R, C, m)
        else:  # (R, C, m): H_r W
            K = self.p[:, :, None] * (self.Wc[None] - self.PW[:, None, :]) / self.R
        cj = torch.empty(self.coords.numel(), 2, dtype=torch.long, device=dev)
        grid = torch.meshgrid(
            torch.arange(C, device=dev), torch.arange(self.m1, device=dev), indexing="ij"
        )
        cj[self.coords.reshape(-1)] = torch.stack(grid, dim=-1).reshape(-1, 2)
        _, body_vjp = vjp(sp.body, sp.theta_b)
        rows = _as_slice(sp.body_idx)
        for i0 in range(0, cj.shape[0], k):
            cs, js = cj[i0 : i0 + k, 0], cj[i0 : i0 + k, 1]
            cot = K[:, cs, :] * self.abar[:, js, None]  # (R, k, m)
            w = (js < m).nonzero().reshape(-1)
            cot[:, w, js[w]] += self.g[:, cs[w]]
            out = vmap(body_vjp)(cot.permute(1, 0, 2))[0]  # (k, P_b)
            cols = _as_slice(sp.head_idx[i0 : i0 + k])
            _put(H, rows, cols, out.T)
            _put(H, cols, rows, out)

    def _surrogate(self, features: bool):
        """``s(θ_b)`` with the loss's gradient and Hessian at ``θ_b`` (module docstring)."""
        body, a0, Wc, p, g, R = self.split.body, self.a, self.Wc, self.p, self.g, self.R
        if not features:  # in logits space: Σ_r g_r·ζ_r + ½ ζ_rᵀ H_r ζ_r, ζ = δ Wᵀ

            def s_logits(tb):
                zeta = (body(tb) - a0) @ Wc.T  # (R, C)
                quad = (zeta * zeta).sum() if p is None else (
                    (p * zeta * zeta).sum() - ((p * zeta).sum(dim=1) ** 2).sum())  # fmt: skip
                return (g * zeta).sum() + 0.5 * quad / R

            return s_logits
        u = self.u  # (R, m)
        if p is None:
            G = Wc.T @ Wc / R  # (m, m), the same for every row
        else:
            PW = self.PW  # (R, m)
            WW = (Wc[:, :, None] * Wc[:, None, :]).reshape(self.C, -1)  # (C, m²)
            G = (p @ WW).reshape(R, self.m, self.m)
            G = (G - PW[:, :, None] * PW[:, None, :]) / R  # (R, m, m) = Wᵀ H_r W

        def s(tb):
            d = body(tb) - a0  # (R, m)
            Gd = d @ G if p is None else _RowMatvec.apply(G, d)
            return (u * d).sum() + 0.5 * (Gd * d).sum()

        return s

    def _body_block(self, H: torch.Tensor, k: int, features: bool) -> None:
        """Body × body: batched HVPs (``vmap`` of ``jvp`` of ``grad``) of the surrogate."""
        sp, tb = self.split, self.split.theta_b
        s, P_b = self._surrogate(features), tb.numel()
        hv = vmap(lambda v: jvp(grad(s), (tb,), (v,))[1], in_dims=1, out_dims=1)
        rows = _as_slice(sp.body_idx)
        for c0 in range(0, P_b, k):
            n = min(k, P_b - c0)
            E = torch.zeros(P_b, n, dtype=tb.dtype, device=tb.device)  # (P_b, n) unit vectors
            E[c0 + torch.arange(n, device=tb.device), torch.arange(n, device=tb.device)] = 1
            _put(H, rows, _as_slice(sp.body_idx[c0 : c0 + n]), hv(E))

    def hessian(self, *, max_bytes: int | None = None, chunk_size: int | None = None):
        """The dense ``(P, P)`` Hessian, chunked within the memory budget.

        Raises:
            MemoryError: before allocating, if the result and the smallest chunks' work do
                not fit, with both byte counts.
        """
        sp, R, C, m, m1 = self.split, self.R, self.C, self.m, self.m1
        item, P_b, P_h = self.a.element_size(), sp.body_idx.numel(), self.coords.numel()
        P, dev = P_b + P_h, self.a.device
        features = m <= C
        hs = _as_slice(sp.head_idx)
        fixed = item * (R * (3 * C + 2 * m1 + C * m) + C * m1 * m1 + (R * m * m) * features)
        fixed += 0 if isinstance(hs, slice) else item * P_h * P_h
        plan = dict(budget=memory_budget(dev, max_bytes), fixed=fixed, result=P * P * item,
                    what=f"a dense {P}x{P} Hessian", device=dev)  # fmt: skip
        rows = plan_chunk(R, per_item=2 * item * C * m1, **plan)
        per = HVP_BYTES_PER_FORWARD * self.body_bytes + item * (3 * P_b + 6 * R * (m + C))
        chunks = dict(per_item=per, chunk_size=chunk_size, max_chunk=256, **plan)
        k_body = plan_chunk(P_b, **chunks) if P_b else 1
        k_cross = plan_chunk(P_h, **chunks) if P_b else 1
        H = torch.empty(P, P, dtype=self.a.dtype, device=dev)
        Hhh = H[hs, hs] if isinstance(hs, slice) else H.new_empty(P_h, P_h)
        self._head_block(Hhh, rows)
        if not isinstance(hs, slice):
            _put(H, hs, hs, Hhh)
        if P_b:
            self._cross_block(H, k_cross)
            self._body_block(H, k_body, features)
        return H


def head_terms(f, theta: torch.Tensor) -> HeadTerms | None:
    """:class:`HeadTerms` of a flat loss at ``theta``, or ``None`` without a linear head."""
    head = find_linear_head(f, theta)
    return None if head is None else HeadTerms(f, HeadSplit(f, head, theta))
