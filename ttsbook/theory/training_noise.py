"""Label noise in *training* (float64): the direct-prediction optimum it moves to, the loss it
trains on, and how much noise makes every direction contract at test time.

Training prompts carry noisy labels ``y_i = <w, x_i> + ε_i`` with ``ε_i`` independent of x and
w, mean 0, variance σ² (Gaussian or not), ``w ~ N(0, I)``, ``x ~ N(0, Λ)``. One pass predicts
``ŵ_1 = P b`` with ``P = −V31`` and ``b = Xᵀy/n = Ŝw + Xᵀε/n``, so the loss splits exactly:

    d · L(P) = E||(PŜ − I)w||² + E||PXᵀε||²/n²
             = tr(P E[ŜŜ] Pᵀ) − 2 tr(PΛ) + d + σ² tr(PΛPᵀ)/n.

The Wishart identity gives ``E[ŜŜ] = ΓΛ`` and ``E[XᵀX] = nΛ`` gives the noise term, so
``d · L(P) = tr(P Γ_σ Λ Pᵀ) − 2 tr(PΛ) + d`` with ``Γ_σ = Γ + (σ²/n) I`` (Γ and Λ commute).
Setting the gradient ``2PΓ_σΛ − 2Λ`` to zero: ``P* = Γ_σ⁻¹`` for positive definite Λ, i.e.

    V31* = −(Γ + σ²I/n)⁻¹,   Γ_σ = (1 + 1/n) Λ + ((tr Λ + σ²)/n) I,

exactly, at every n: label noise acts as σ² of extra trace, a ridge the model cannot tell
from signal in a feature it never sees. With ``w ~ N(0, τ²I)`` the shift is ``σ²/(τ²n)``.
The minimum loss is ``1 − tr(Γ_σ⁻¹Λ)/d``. Errors are per coordinate, ``E||ŵ − w||²/d``.
"""
from __future__ import annotations

import math

import torch

from ..checks import DTYPE, check_noise_std
from ..spectra import check_covariance
from .population import _check_square, gamma


def noisy_gamma(train_cov: torch.Tensor, n: float, noise_std: float) -> torch.Tensor:
    """``Γ_σ = Γ + (σ²/n) I = (1 + 1/n) Λ + ((tr Λ + σ²)/n) I`` for labels of noise std σ."""
    eye = torch.eye(check_covariance(train_cov, "train_cov").shape[0], dtype=DTYPE)
    return gamma(train_cov, n) + check_noise_std(noise_std) ** 2 / n * eye


def noisy_pseudo_newton_v(train_cov: torch.Tensor, n: float, noise_std: float) -> torch.Tensor:
    """``V31* = −(Γ + σ²I/n)⁻¹``: the minimiser of the direct-prediction loss on noisy labels.

    Unique for positive definite Λ; for a singular Λ the columns on its null space are free
    (they never meet a feature) and this is the minimiser that sets them like the rest.
    """
    return -torch.linalg.inv(noisy_gamma(train_cov, n, noise_std))


def noisy_direct_loss(V: torch.Tensor, train_cov: torch.Tensor, n: float,
                      noise_std: float) -> float:
    """Exact population direct-prediction loss ``E||ŵ_1 − w||²/d`` of any ``V`` (d, d) on
    training prompts of ``n`` examples ``x ~ N(0, Λ)`` with label noise of std σ.

    ``(tr(P Γ_σ Λ Pᵀ) − 2 tr(PΛ) + d)/d`` with ``P = −V``; at ``V = noisy_pseudo_newton_v``
    it is ``1 − tr(Γ_σ⁻¹Λ)/d``, the least any V can reach.
    """
    cov = check_covariance(train_cov, "train_cov")
    d = cov.shape[0]
    P = -_check_square(V, d)
    M = noisy_gamma(cov, n, noise_std) @ cov
    return ((torch.trace(P @ M @ P.T) - 2 * torch.trace(P @ cov) + d) / d).item()


def contracting_noise(train_cov: torch.Tensor, n: float, test_cov: torch.Tensor) -> float:
    """The least label-noise std σ at which the noisy optimum contracts every direction of the
    test covariance Σ in population: ``max_j μ_j(σ) <= 2``, μ the eigenvalues of ``Γ_σ⁻¹Σ``.

    ``Γ_σ⁻¹Σ`` is similar to ``Γ_σ^(-1/2) Σ Γ_σ^(-1/2)``, so every ``μ_j <= 2`` iff
    ``Σ ⪯ 2Γ + (2σ²/n) I``, i.e. ``σ² >= (n/2) λ_max(Σ − 2Γ)``: returns the square root of
    that bound, 0 when it is negative (already no μ above 2). At this σ, ``μ_max = 2``
    exactly (the direction neither grows nor shrinks); any larger σ contracts it. Holds for
    any Σ, commuting with Λ or not.
    """
    test_cov = check_covariance(test_cov, "test_cov")
    G = gamma(train_cov, n)
    _check_square(G, test_cov.shape[0], "train_cov")
    top = torch.linalg.eigvalsh(test_cov - 2 * G)[-1].item()
    return math.sqrt(max(0.0, n / 2 * top))
