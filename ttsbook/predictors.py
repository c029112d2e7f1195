"""Reference predictors that answer like the models: ``predict(prompts, n_steps) -> (B, k, d)``:
pseudo-Newton, gradient descent, ridge and least squares.

They see only the prompt's ``X`` and ``y`` (never ``w``) and run in float64.
"""
from __future__ import annotations

import torch

from .checks import DTYPE, check_number, check_steps
from .tasks import Prompts
from .theory import pseudo_newton_v


def pseudo_newton_chain(V: torch.Tensor, S: torch.Tensor, b: torch.Tensor, n_steps: int, *,
                        eta=None, noise_std: float = 0.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The chain ``ŵ ← ŵ + η V(Ŝŵ − b) + σξ`` from ``ŵ_0 = 0``: iterates (..., n_steps, d).

    Every chain of the book is this one: the trained LSA (``PseudoNewton``), damped CoT
    (``stopping.damped_iterates``, a per-prompt η) and parallel chains (``parallel.run_chains``:
    weighted moments, per-pass noise). ``S`` (..., d, d) and ``b`` (..., d) are a prompt's
    moments (``Prompts.moments``; ``S`` may broadcast against ``b``); ``eta`` (None: 1) is
    a number or a tensor that broadcasts against ``b[..., :1]``; with a ``generator``, every
    pass adds ``noise_std`` times fresh ``N(0, I)`` noise drawn from it (float64).
    """
    check_steps(n_steps)
    V = torch.as_tensor(V).to(S)
    w_hat, iterates = torch.zeros_like(b), []
    for _ in range(n_steps):
        step = (torch.einsum("...ij,...j->...i", S, w_hat) - b) @ V.T
        w_hat = w_hat + (step if eta is None else eta * step)
        if generator is not None:
            w_hat = w_hat + noise_std * torch.randn(w_hat.shape, generator=generator,
                                                    dtype=DTYPE).to(w_hat)
        iterates.append(w_hat)
    return torch.stack(iterates, -2) if iterates else b.new_zeros(*b.shape[:-1], 0, b.shape[-1])


class PseudoNewton:
    """Preconditioned steps ``ŵ ← ŵ + V (Ŝ ŵ − b)`` from ``ŵ_0 = 0``.

    ``V = −Γ⁻¹`` (see ``trained``) is exactly what the trained LSA computes.
    """

    def __init__(self, V: torch.Tensor):
        self.V = torch.as_tensor(V, dtype=DTYPE)
        if self.V.ndim != 2 or self.V.shape[0] != self.V.shape[1]:
            raise ValueError(f"V must be a square (d, d) matrix, got shape {tuple(self.V.shape)}")

    @classmethod
    def trained(cls, train_cov: torch.Tensor, n: float) -> "PseudoNewton":
        """The closed-form trained LSA for training covariance ``cov`` and context ``n``."""
        return cls(pseudo_newton_v(train_cov, n))

    def predict(self, prompts: Prompts, n_steps: int) -> torch.Tensor:
        check_steps(n_steps)
        S, b = prompts.moments()
        d = S.shape[-1]
        if self.V.shape[0] != d:
            raise ValueError(f"prompts have d = {d}, but V is {tuple(self.V.shape)}")
        return pseudo_newton_chain(self.V, S, b, n_steps)


class GradientDescent(PseudoNewton):
    """Plain gradient descent on the prompt's loss ``½ wᵀŜw − bᵀw`` with step ``lr``."""

    def __init__(self, eta: float, n_dims: int):
        check_number(eta, "eta", 0, strict=True)
        super().__init__(-eta * torch.eye(n_dims, dtype=DTYPE))


class Ridge:
    """Ridge on each prompt, ``(Ŝ + γI)⁻¹ b``, at every k (its spectral filter:
    ``theory.ridge_filter``; the γ that matches k gradient steps: ``theory.ridge_gamma``)."""

    def __init__(self, gamma: float):
        self.gamma = check_number(gamma, "gamma", 0, strict=True)

    def predict(self, prompts: Prompts, n_steps: int) -> torch.Tensor:
        check_steps(n_steps)
        S, b = prompts.to("cpu", DTYPE).moments()
        w_hat = torch.linalg.solve(S + self.gamma * torch.eye(S.shape[-1], dtype=DTYPE), b)
        return w_hat[:, None, :].expand(-1, n_steps, -1)


class LeastSquares:
    """Minimum-norm least squares ``Ŝ⁺ b`` at every k: exact Newton converges in one step."""

    def predict(self, prompts: Prompts, n_steps: int) -> torch.Tensor:
        check_steps(n_steps)
        S, b = prompts.moments()
        w_hat = torch.einsum("bij,bj->bi", torch.linalg.pinv(S, hermitian=True), b)
        return w_hat[:, None, :].expand(-1, n_steps, -1)
