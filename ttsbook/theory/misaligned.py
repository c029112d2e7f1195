"""A skills gap between misaligned eigenbases (float64): when the test covariance Σ does not
commute with the training covariance Λ, the CoT step ``A = I − PΣ`` (``P = −V``, ``Γ⁻¹`` for
the trained LSA) is not a normal matrix.

Its eigenvalues are still ``1 − μ_j`` (μ_j > 0, the eigenvalues of PΣ, real because PΣ is
similar to ``P^(1/2) Σ P^(1/2)``), but its eigenvectors are oblique, so the error
``E_k = ||A^k||_F²/d`` (``population_error``) is no longer the *aligned* error
``a_k = Σ_j (1 − μ_j)^(2k)/d`` that the same μ give when the eigenbases agree. Two exact
bounds hold for every k, for any symmetric positive definite P:

- Schur's inequality (the squared eigenvalues of a matrix sum to at most its squared
  Frobenius norm, with equality iff it is normal): ``E_k >= a_k``. Misalignment never helps.
- ``A = P^(1/2) B P^(-1/2)`` with B symmetric (and likewise with Σ^(1/2)), so
  ``E_k <= κ a_k`` with ``κ = min(cond P, cond Σ)``: the transient excess is at most κ.

So when every μ_j < 2 the aligned error falls monotonically from 1, while the misaligned
error may first *rise* above 1 (by at most κ) and then fall at the rate the μ set; when some
μ_j > 2 both fall first and then grow. Arrays over k are indexed k = 0..n_steps.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..checks import DTYPE, BadValue, check_int
from ..spectra import check_covariance
from .population import _check_square, mu_spectrum, population_error


def tilt(cov: torch.Tensor, i: int, j: int, angle: float) -> torch.Tensor:
    """``Q cov Qᵀ`` with Q the rotation by ``angle`` (radians) in the plane of coordinates i
    and j: the direction e_i turns towards e_j. ``angle = 0`` returns ``cov``."""
    cov = check_covariance(cov)
    d = cov.shape[0]
    for name, idx in (("i", i), ("j", j)):
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < d:
            raise BadValue(name, f"{name} must be an integer in [0, {d}), got {idx!r}")
    if i == j:
        raise BadValue("j", f"j must differ from i = {i}")
    if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not math.isfinite(angle):
        raise BadValue("angle", f"angle must be a finite number (radians), got {angle!r}")
    Q = torch.eye(d, dtype=DTYPE)
    c, s = math.cos(angle), math.sin(angle)
    Q[i, i], Q[j, j], Q[j, i], Q[i, j] = c, c, s, -s
    out = Q @ cov @ Q.T
    return (out + out.T) / 2


def aligned_error(V: torch.Tensor, test_cov: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``a_k = Σ_j (1 − μ_j)^(2k)/d``, k = 0..n_steps: the error a normal step with the same
    μ would have (exactly ``population_error`` when Σ and Λ commute). (n_steps + 1,)."""
    check_int(n_steps, "n_steps", low=0)
    mu = mu_spectrum(V, test_cov)
    k = torch.arange(n_steps + 1, dtype=DTYPE)[:, None]
    return ((1 - mu[None, :]) ** (2 * k)).mean(1)


def misalignment_bound(V: torch.Tensor, test_cov: torch.Tensor) -> float:
    """``κ = min(cond P, cond Σ)`` with ``P = −V``: ``a_k <= E_k <= κ a_k`` for every k.

    ``V`` must be symmetric negative definite (as ``−Γ⁻¹`` is); ``cond Σ`` is inf for a
    singular Σ.
    """
    test_cov = check_covariance(test_cov, "test_cov")
    P = -_check_square(V, test_cov.shape[0])
    if (P - P.T).abs().max().item() > 1e-10 * P.abs().max().item():
        raise BadValue("V", "V must be symmetric (the bound needs P = −V symmetric)")
    p = torch.linalg.eigvalsh(P)
    if p[0].item() <= 0:
        raise BadValue("V", f"V must be negative definite; −V has eigenvalue {p[0].item():.3g}")
    s = torch.linalg.eigvalsh(test_cov)
    cond_s = s[-1].item() / s[0].item() if s[0].item() > 0 else math.inf
    return min(p[-1].item() / p[0].item(), cond_s)


class Transient(NamedTuple):
    """How far misalignment lifts the error above the aligned prediction, k = 1..n_steps.

    ``peak``: ``max_k E_k`` (above 1 = the error rose above that of ŵ = 0), at ``k_peak``;
    ``excess``: ``max_k E_k / a_k`` (>= 1), at ``k_excess``; ``bound``: κ, which caps excess.
    """

    peak: float
    k_peak: int
    excess: float
    k_excess: int
    bound: float


def transient(V: torch.Tensor, test_cov: torch.Tensor, n_steps: int) -> Transient:
    """The :class:`Transient` of ``V`` on Σ over k = 1..n_steps (``n_steps >= 1``)."""
    check_int(n_steps, "n_steps")
    err = population_error(V, test_cov, n_steps)[1:]
    aligned = aligned_error(V, test_cov, n_steps)[1:]
    ratio = torch.where(aligned > 0, err / aligned, 1.0)   # a_k = 0 only when A^k = 0
    return Transient(err.max().item(), int(err.argmax()) + 1, ratio.max().item(),
                     int(ratio.argmax()) + 1, misalignment_bound(V, test_cov))
