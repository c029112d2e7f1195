"""Label noise ``y = <w, x> + σε`` (float64): k passes as early-stopped preconditioned
gradient descent, the least-squares limit and its double descent in m, and the
early-stopping ↔ ridge correspondence. With noise, the one-step and Marchenko–Pastur k-step
errors are ``one_step_error`` and ``finite_prompt_error`` with ``noise_std``.

Every estimate here is a *spectral filter* of least squares on the prompt: with
``Ŝ = XᵀX/m = Σ_j λ_j u_j u_jᵀ`` and ``b = Xᵀy/m``, ``ŵ = Σ_j φ(λ_j) u_j u_jᵀ b / λ_j``.
k passes ``ŵ ← ŵ − η(Ŝŵ − b)`` from ``ŵ_0 = 0`` (the trained LSA when Λ = I, η = n/(n+d+1);
gradient descent with step size η) have ``φ_k(λ) = 1 − (1 − ηλ)^k``; ridge ``(Ŝ + γI)⁻¹ b``
has ``φ_γ(λ) = λ/(λ + γ)`` (the estimator itself: ``ttsbook.Ridge``). Given Ŝ, with
``w ~ N(0, I)`` and ε ~ N(0, I) the error is exactly
``(Σ_j (1 − φ_j)² + σ²/m Σ_j φ_j²/λ_j) / d`` (``filter_error``).
Errors are per coordinate, ``E||ŵ − w||²/d``; arrays over k are indexed k = 0..n_steps.
"""
from __future__ import annotations

import torch

from ..checks import DTYPE, check_int, check_number


def gd_filter(lam, eta: float, k: int) -> torch.Tensor:
    """``φ_k(λ) = 1 − (1 − η·λ)^k``: k gradient steps of size ``eta`` (η) from 0."""
    check_number(eta, "eta", 0, strict=True)
    check_int(k, "k", low=0)
    return 1 - (1 - eta * torch.as_tensor(lam, dtype=DTYPE)) ** k


def ridge_filter(lam, gamma: float) -> torch.Tensor:
    """``φ_γ(λ) = λ/(λ + γ)``: ridge regression with penalty γ on the prompt."""
    check_number(gamma, "gamma", 0, strict=True)
    lam = torch.as_tensor(lam, dtype=DTYPE)
    return lam / (lam + gamma)


def ridge_gamma(k: int, eta: float) -> float:
    """The ridge penalty ``γ(k) = 1/(k·η)`` that matches k gradient steps.

    Exact statement (``0 ≤ η·λ ≤ 1``): ``φ_γ(k)(λ) ≤ φ_k(λ) ≤ 2 φ_γ(k)(λ)``, from
    ``(1 − x)^k ≤ e^(−kx) ≤ 1/(1 + kx)`` and ``1 − (1 − x)^k ≤ min(1, kx)``. Both filters
    are ``kx + O(x²)`` at small ``x = η·λ``; the rest is approximate.
    """
    check_int(k, "k")
    check_number(eta, "eta", 0, strict=True)
    return 1 / (k * eta)


def filter_error(S: torch.Tensor, phi, noise_std: float, m: int) -> torch.Tensor:
    """Exact error given the prompts' ``Ŝ`` (B, d, d) of the filter ``phi`` (a function of λ).

    ``(Σ_j (1 − φ(λ_j))² + σ²/m Σ_j φ(λ_j)²/λ_j) / d`` per prompt, (B,); ``φ(0)`` is
    taken as 0 (no signal reaches a null direction).
    """
    check_number(noise_std, "noise_std", 0)
    check_int(m, "m")
    lam = torch.linalg.eigvalsh(torch.as_tensor(S, dtype=DTYPE)).clamp(min=0)
    live = lam > 1e-12 * lam.amax(-1, keepdim=True)
    f = torch.where(live, phi(lam), 0.0)
    var = torch.where(live, f ** 2 / torch.where(live, lam, 1.0), 0.0)
    return ((1 - f) ** 2 + noise_std ** 2 / m * var).mean(-1)


def least_squares_error(n_dims: int, m: int, noise_std: float) -> float:
    """Exact error of minimum-norm least squares on a prompt of m examples, Σ = I.

    ``σ²/(m − d − 1)`` for ``m > d + 1`` (inverse-Wishart mean ``E(XᵀX)⁻¹ = I/(m − d − 1)``);
    ``(d − m)/d + σ² m/(d (d − m − 1))`` for ``m < d − 1`` (the bias: w's part outside the m
    sampled directions). Between, the variance is infinite (``inf`` when σ > 0): the peak
    of the double descent. It is what k → ∞ passes reach when the chain converges.
    """
    check_int(n_dims, "n_dims")
    check_int(m, "m")
    check_number(noise_std, "noise_std", 0)
    var = noise_std ** 2
    bias = max(n_dims - m, 0) / n_dims
    if m > n_dims + 1:
        return var / (m - n_dims - 1)
    if m < n_dims - 1:
        return bias + var * m / (n_dims * (n_dims - m - 1))
    return bias if var == 0 else float("inf")
