"""Label noise ``y = <w, x> + σε`` (float64): k passes as early-stopped preconditioned
gradient descent, the least-squares limit and its double descent in m, and the
early-stopping ↔ ridge correspondence.

Every estimate here is a *spectral filter* of least squares on the prompt: with
``Ŝ = XᵀX/m = Σ_j λ_j u_j u_jᵀ`` and ``b = Xᵀy/m``, ``ŵ = Σ_j φ(λ_j) u_j u_jᵀ b / λ_j``.
k passes ``ŵ ← ŵ − c(Ŝŵ − b)`` from ``ŵ_0 = 0`` (the trained LSA when Λ = I, c = n/(n+d+1);
gradient descent with step c) have ``φ_k(λ) = 1 − (1 − cλ)^k``; ridge ``(Ŝ + γI)⁻¹ b``
has ``φ_γ(λ) = λ/(λ + γ)``. Given Ŝ, with ``w ~ N(0, I)`` and ε ~ N(0, I) the error is
exactly ``(Σ_j (1 − φ_j)² + σ²/m Σ_j φ_j²/λ_j) / d`` (``filter_error``).
Errors are per coordinate, ``E||ŵ − w||²/d``; arrays over k are indexed k = 0..n_steps.
"""
from __future__ import annotations

import torch

from ..checks import check_int, check_number
from ..spectra import DTYPE, check_covariance
from ..tasks import Prompts
from .finite import _spectral_quadrature
from .population import _check_square, one_step_error


def gd_filter(lam, step: float, k: int) -> torch.Tensor:
    """``φ_k(λ) = 1 − (1 − step·λ)^k``: k gradient steps of size ``step`` from 0."""
    check_number(step, "step", 0, strict=True)
    check_int(k, "k", low=0)
    return 1 - (1 - step * torch.as_tensor(lam, dtype=DTYPE)) ** k


def ridge_filter(lam, gamma: float) -> torch.Tensor:
    """``φ_γ(λ) = λ/(λ + γ)``: ridge regression with penalty γ on the prompt."""
    check_number(gamma, "gamma", 0, strict=True)
    lam = torch.as_tensor(lam, dtype=DTYPE)
    return lam / (lam + gamma)


def ridge_gamma(k: int, step: float) -> float:
    """The ridge penalty ``γ(k) = 1/(k·step)`` that matches k gradient steps.

    Exact statement (``0 ≤ step·λ ≤ 1``): ``φ_γ(k)(λ) ≤ φ_k(λ) ≤ 2 φ_γ(k)(λ)``, from
    ``(1 − x)^k ≤ e^(−kx) ≤ 1/(1 + kx)`` and ``1 − (1 − x)^k ≤ min(1, kx)``. Both filters
    are ``kx + O(x²)`` at small ``x = step·λ``; the rest is approximate.
    """
    check_int(k, "k")
    check_number(step, "step", 0, strict=True)
    return 1 / (k * step)


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


def ridge(prompts: Prompts, gamma: float) -> torch.Tensor:
    """Ridge on each prompt, ``(Ŝ + γI)⁻¹ Xᵀy/m``: (B, d) float64."""
    check_number(gamma, "gamma", 0, strict=True)
    S, b = prompts.to("cpu").moments()
    eye = torch.eye(S.shape[-1], dtype=DTYPE)
    return torch.linalg.solve(S + gamma * eye, b)


def noisy_one_step_error(V: torch.Tensor, cov_test: torch.Tensor, m: int,
                         noise_std: float) -> float:
    """Exact error of one pass with noisy labels, any V, x ~ N(0, Σ), m examples.

    The noiseless ``one_step_error`` plus the noise term ``σ² tr(VΣVᵀ) / (m d)``.
    """
    cov_test = check_covariance(cov_test, "cov_test")
    check_int(m, "m")
    check_number(noise_std, "noise_std", 0)
    V = _check_square(V, cov_test.shape[0])
    var = noise_std ** 2 * torch.trace(V @ cov_test @ V.T).item() / m
    return one_step_error(V, cov_test, m) + var / cov_test.shape[0]


def least_squares_error(d: int, m: int, noise_std: float) -> float:
    """Exact error of minimum-norm least squares on a prompt of m examples, Σ = I.

    ``σ²/(m − d − 1)`` for ``m > d + 1`` (inverse-Wishart mean ``E(XᵀX)⁻¹ = I/(m − d − 1)``);
    ``(d − m)/d + σ² m/(d (d − m − 1))`` for ``m < d − 1`` (the bias: w's part outside the m
    sampled directions). Between, the variance is infinite (``inf`` when σ > 0): the peak
    of the double descent. It is what k → ∞ passes reach when the chain converges.
    """
    check_int(d, "d")
    check_int(m, "m")
    check_number(noise_std, "noise_std", 0)
    var = noise_std ** 2
    bias = max(d - m, 0) / d
    if m > d + 1:
        return var / (m - d - 1)
    if m < d - 1:
        return bias + var * m / (d * (d - m - 1))
    return bias if var == 0 else float("inf")


def noisy_prompt_error(c: float, d: int, m: int, noise_std: float,
                       n_steps: int) -> torch.Tensor:
    """Error of k passes ``ŵ ← ŵ − c(Ŝŵ − b)`` with noisy labels, Λ = Σ = I: (n_steps+1,).

    ``E tr[(I − cŜ)^{2k} + σ²/m · φ_k(Ŝ)² Ŝ⁺] / d``, ``φ_k(λ) = 1 − (1 − cλ)^k``. Exact
    for k = 0 and k = 1 (the noise term is then ``σ²c²/m``); for k ≥ 2 the same
    Marchenko–Pastur approximation as ``finite_prompt_error``. As k → ∞ its noise part
    tends to the exact ``σ²/(m − d − 1)`` within 0.3% at d = 20, m = 2d (the bare
    Marchenko–Pastur law, without the 1/d correction, would give ``σ²/(m − d)``).
    """
    check_number(c, "c", 0, strict=True)
    check_int(d, "d")
    check_int(m, "m")
    check_number(noise_std, "noise_std", 0)
    check_int(n_steps, "n_steps", low=0)
    lam, weight = _spectral_quadrature(torch.eye(d, dtype=DTYPE), m)
    k = torch.arange(n_steps + 1, dtype=DTYPE)[:, None]
    shrink = (1 - c * lam[None, :]) ** k                       # (K+1, nodes)
    live = lam > 0
    var = torch.where(live, (1 - shrink) ** 2 / torch.where(live, lam, 1.0), 0.0)
    out = (weight * (shrink ** 2 + noise_std ** 2 / m * var)).sum(1)
    out[0] = 1.0
    if n_steps >= 1:
        V = -c * torch.eye(d, dtype=DTYPE)
        out[1] = noisy_one_step_error(V, torch.eye(d, dtype=DTYPE), m, noise_std)
    return out


