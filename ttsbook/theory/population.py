"""Closed forms of the paper at infinite test prompts (float64): Γ, population and one-step
errors, the μ spectrum, the scaling law and the context it asks for.

Convention: every *error* here is per coordinate, ``E||ŵ − w||² / d`` with ``w ~ N(0, I_d)``,
so predicting ``ŵ = 0`` scores 1. Arrays over k are indexed by the number of passes
``k = 0, 1, …, n_steps`` (entry 0 is the starting point ``ŵ_0 = 0``).
"""
from __future__ import annotations

import numbers

import torch

from ..checks import DTYPE, check_int, check_number
from ..spectra import check_covariance, hardness


def _check_square(V: torch.Tensor, d: int, name: str = "V") -> torch.Tensor:
    V = torch.as_tensor(V, dtype=DTYPE)
    if tuple(V.shape) != (d, d):
        raise ValueError(f"{name} must have shape {(d, d)} to match the covariance, "
                         f"got {tuple(V.shape)}")
    return V


def gamma(train_cov: torch.Tensor, n: float) -> torch.Tensor:
    """``Γ = (1 + 1/n) Λ + (tr Λ / n) I``: the training data's regularised covariance."""
    train_cov = check_covariance(train_cov, "train_cov")
    check_number(n, "n", 1)
    eye = torch.eye(train_cov.shape[0], dtype=DTYPE)
    return (1 + 1 / n) * train_cov + torch.trace(train_cov) / n * eye


def pseudo_newton_v(train_cov: torch.Tensor, n: float) -> torch.Tensor:
    """``V31* = −Γ⁻¹``: the minimiser of the population direct-prediction loss."""
    return -torch.linalg.inv(gamma(train_cov, n))


def wishart_second_moment(cov: torch.Tensor, B: torch.Tensor, n: int) -> torch.Tensor:
    """``E[Ŝ B Ŝ]`` for ``Ŝ = X Xᵀ/n`` with n columns ``x ~ N(0, Λ)`` and any square B."""
    cov = check_covariance(cov)
    check_number(n, "n", 1)
    B = _check_square(B, cov.shape[0], "B")
    one_over_n = (cov @ B @ cov + cov @ B.T @ cov + torch.trace(cov @ B) * cov) / n
    return (n - 1) / n * cov @ B @ cov + one_over_n


def population_error(V: torch.Tensor, test_cov: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Error of k CoT steps ``ŵ ← ŵ + V Σ̂ (ŵ − w)`` when the test prompt is infinitely
    long.

    Returns a ``(n_steps + 1,)`` tensor: ``||(I + VΣ)^k||_F² / d`` for k = 0..n_steps.
    With ``V = −Γ⁻¹`` this is ``||(I − Γ⁻¹Σ)^k||_F² / d``.
    """
    test_cov = check_covariance(test_cov, "test_cov")
    check_int(n_steps, "n_steps", low=0)
    d = test_cov.shape[0]
    step = torch.eye(d, dtype=DTYPE) + _check_square(V, d) @ test_cov
    out, power = [], torch.eye(d, dtype=DTYPE)
    for _ in range(n_steps + 1):
        out.append((power ** 2).sum() / d)
        power = step @ power
    return torch.stack(out)


def one_step_error(V: torch.Tensor, test_cov: torch.Tensor, m: int,
                   noise_std: float = 0.0) -> float:
    """Exact error of one pass with a test prompt of ``m`` examples ``x ~ N(0, Σ)``, any V.

    ``(||I + VΣ||_F² + (tr(VΣ²Vᵀ) + tr(VΣVᵀ) tr Σ) / m) / d``, plus ``σ² tr(VΣVᵀ) / (m d)``
    with label noise of standard deviation ``noise_std`` = σ.
    """
    test_cov = check_covariance(test_cov, "test_cov")
    check_number(m, "m", 1)
    check_number(noise_std, "noise_std", 0)
    d = test_cov.shape[0]
    V = _check_square(V, d)
    bias = ((torch.eye(d, dtype=DTYPE) + V @ test_cov) ** 2).sum()
    spread = torch.trace(V @ test_cov @ V.T)
    var = torch.trace(V @ test_cov @ test_cov @ V.T) + spread * torch.trace(test_cov)
    error = ((bias + var / m) / d).item()
    return error + noise_std ** 2 * spread.item() / m / d if noise_std else error


def mu_spectrum(V: torch.Tensor, test_cov: torch.Tensor) -> torch.Tensor:
    """Eigenvalues ``μ_j`` of ``−VΣ`` (``Γ⁻¹Σ`` for the trained V), ascending.

    A direction contracts under CoT when ``0 < μ < 2`` and expands when ``μ > 2``.
    """
    test_cov = check_covariance(test_cov, "test_cov")
    mu = torch.linalg.eigvals(-_check_square(V, test_cov.shape[0]) @ test_cov)
    return torch.sort(mu.real).values


def scaling_law(spectrum, n: float, n_steps: int) -> torch.Tensor:
    """Upper bound ``(1 + n/(1 + Hard))^(−2k)`` on the error for k = 0..n_steps
    (Σ = Λ, m → ∞). ``spectrum``: the covariance Λ, or its hardness ``Hard`` (a number).

    It is an equality for ``Λ = I``; ``n_star`` inverts it.
    """
    check_number(n, "n", 1)
    check_int(n_steps, "n_steps", low=0)
    hard = float(spectrum) if isinstance(spectrum, numbers.Real) else hardness(spectrum)
    k = torch.arange(n_steps + 1, dtype=DTYPE)
    return (1 + n / (1 + hard)) ** (-2 * k)


def n_star(hard: float, k, eps: float) -> torch.Tensor:
    """Training context the scaling law asks for to reach error ``eps`` with ``k`` steps.

    ``n*(k) = (1 + Hard)((1/eps)^(1/(2k)) − 1)`` (per-coordinate error, so no factor d).
    """
    if not hard > 0:
        raise ValueError(f"hard must be > 0, got {hard!r}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
    k = torch.as_tensor(k, dtype=DTYPE)
    if (k < 1).any():
        raise ValueError(f"k must be >= 1, got {k.tolist()}")
    return (1 + hard) * ((1 / eps) ** (1 / (2 * k)) - 1)


def context_needed(train_cov: torch.Tensor, k: int, eps: float,
                   test_cov: torch.Tensor | None = None, n_max: float = 1e6,
                   tol: float = 1e-9) -> float:
    """The (real) training context ``n`` at which the closed-form population error after ``k``
    passes equals ``eps``, found by bisection (the error falls as n grows when Σ = Λ).

    ``test_cov`` defaults to ``train_cov``. Compare with the scaling law's ``n_star(Hard, k, eps)``:
    equal for ``Λ = I``, larger (the law is pessimistic) otherwise.
    """
    train_cov = check_covariance(train_cov, "train_cov")
    test_cov = train_cov if test_cov is None else test_cov
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")

    def error(n: float) -> float:
        return population_error(pseudo_newton_v(train_cov, n), test_cov, k)[k].item()

    lo, hi = 1.0, float(n_max)
    if error(lo) <= eps:
        return lo
    if error(hi) > eps:
        raise ValueError(f"even n = {n_max:g} does not reach error {eps} with k = {k}")
    while hi - lo > tol * hi:
        mid = (lo * hi) ** 0.5 if hi / lo > 4 else (lo + hi) / 2  # geometric steps first
        lo, hi = (mid, hi) if error(mid) > eps else (lo, mid)
    return hi
