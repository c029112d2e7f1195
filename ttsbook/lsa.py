"""One-layer linear self-attention (LSA) that predicts the task vector, with test-time CoT.

Tokens (:mod:`ttsbook.tokens`) are columns of width ``D = 2d + 2`` laid out as
``[x (d); y (1); w (d); 1 (1)]``::

    Z_0 = [ x_1 … x_n | 0  ]
          [ y_1 … y_n | 0  ]
          [ 0   … 0   | w_0]      w_0 = 0
          [ 0   … 0   | 1  ]      shape (2d + 2, n + 1)

    f(Z) = Z + (1/n) V Z (Zᵀ W Z)        no softmax, no mask

Only three blocks are non-zero: ``V31`` (w rows, x columns), ``W13`` (x rows, w columns) and
the scalar ``W24`` (y row, constant column). One pass is one update
``ŵ ← ŵ + V31 Ŝ (W13 ŵ − w)`` with ``Ŝ = X Xᵀ / n``; CoT appends ``(0, 0, ŵ, 1)``
and runs again.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_int, check_number, check_steps
from .tasks import Prompts
from .theory import pseudo_newton_v
from .tokens import cot_column, embed


@dataclass
class LSAConfig:
    """``n_dims``: task dimension d. ``init_std``: std of the random init of V31.

    ``train_w13``: let W13 receive updates. It is fixed to I by default because direct
    training gives it exactly zero gradient: it only ever multiplies ``w_0 = 0``.
    """

    n_dims: int
    init_std: float = 0.01
    train_w13: bool = False
    seed: int = 0

    def __post_init__(self):
        check_int(self.n_dims, "n_dims")
        check_number(self.init_std, "init_std", 0)


class LSA(nn.Module):
    """The sparse one-layer LSA of the paper; ``predict`` returns the CoT iterates."""

    def __init__(self, config: LSAConfig):
        super().__init__()
        self.config = config
        d = config.n_dims
        g = torch.Generator().manual_seed(config.seed)
        self.V31 = nn.Parameter(config.init_std * torch.randn(d, d, generator=g))
        self.W13 = nn.Parameter(torch.eye(d), requires_grad=config.train_w13)
        self.W24 = nn.Parameter(torch.tensor(-1.0), requires_grad=False)

    def value_matrix(self) -> torch.Tensor:
        """The full (D, D) value matrix V: zero except the V31 block."""
        d = self.config.n_dims
        V = self.V31.new_zeros(2 * d + 2, 2 * d + 2)
        V[d + 1:2 * d + 1, :d] = self.V31
        return V

    def key_query_matrix(self) -> torch.Tensor:
        """The full (D, D) matrix W: zero except the W13 block and the scalar W24."""
        d = self.config.n_dims
        W = self.W13.new_zeros(2 * d + 2, 2 * d + 2)
        W[:d, d + 1:2 * d + 1] = self.W13
        W[d, -1] = self.W24
        return W

    def forward(self, Z: torch.Tensor, n_points: int | None = None) -> torch.Tensor:
        """``f(Z) = Z + (1/n) V Z (Zᵀ W Z)`` on every column; Z: (B, D, T) -> (B, D, T).

        ``n_points`` is the number of example columns (default ``T - 1``: a plain prompt).
        """
        n = Z.shape[-1] - 1 if n_points is None else n_points
        scores = Z.transpose(1, 2) @ self.key_query_matrix() @ Z  # (B, T, T)
        return Z + self.value_matrix() @ Z @ scores / n

    def query(self, state: torch.Tensor, z: torch.Tensor, n_points: int) -> torch.Tensor:
        """The output column for query token ``z`` (B, D) given ``state = Σ_t z_t z_tᵀ``
        (B, D, D).

        Linear attention needs no (T, T) score matrix: ``Z (Zᵀ W z) = (Z Zᵀ) W z``, so a
        running (D, D) state is its whole KV cache and each CoT step costs O(D²).
        """
        mixed = torch.einsum("bij,bj->bi", state, z @ self.key_query_matrix().T)
        return z + mixed @ self.value_matrix().T / n_points

    def predict(self, prompts: Prompts, n_steps: int, *,
                feedback_grad: bool = True) -> torch.Tensor:
        """CoT iterates ``ŵ_1 … ŵ_k`` for k = ``n_steps`` passes: (B, n_steps, d).

        ``feedback_grad=False`` feeds each ``ŵ`` back without gradient (stop-gradient), as
        :func:`ttsbook.train.cot_loss` trains the GPT; the iterates are the same.
        """
        check_steps(n_steps)
        prompts = prompts.validate().to(self.V31.device, self.V31.dtype)
        d, n = self.config.n_dims, prompts.n_points
        if prompts.n_dims != d:
            raise ValueError(f"prompts have d = {prompts.n_dims}, but this model has n_dims = {d}")
        Z = embed(prompts)                       # (B, D, n + 1)
        state, z = Z @ Z.transpose(1, 2), Z[:, :, -1]
        iterates = []
        for step in range(n_steps):
            w_hat = self.query(state, z, n)[:, d + 1:2 * d + 1]
            iterates.append(w_hat)
            if step + 1 == n_steps:
                break
            fed = w_hat if feedback_grad else w_hat.detach()
            z = cot_column(fed)[:, :, 0]         # append (0, 0, ŵ, 1) to the prompt
            if torch.is_grad_enabled():          # autograd needs the old state intact
                state = state + z[:, :, None] * z[:, None, :]
            else:                                # in place: no (B, D, D) copy per step
                state.baddbmm_(z[:, :, None], z[:, None, :])
        return torch.stack(iterates, dim=1) if iterates else Z.new_zeros(len(prompts), 0, d)

    @torch.no_grad()
    def set_closed_form(self, train_cov: torch.Tensor, n: float) -> "LSA":
        """Set ``V31 = −Γ⁻¹`` (and ``W13 = I``, ``W24 = −1``): the trained optimum for
        Λ, n."""
        V = pseudo_newton_v(train_cov, n)
        if V.shape != self.V31.shape:
            raise ValueError(f"cov must be {tuple(self.V31.shape)} for this model, "
                             f"got {tuple(V.shape)}")
        self.V31.copy_(V)
        self.W13.copy_(torch.eye(self.config.n_dims))
        self.W24.fill_(-1.0)
        return self
