"""Closed forms of the paper (float64). See ``shared/science.md`` §3–4 and the book.

Convention: every *error* here is per coordinate, ``E||ŵ − w||² / d`` with ``w ~ N(0, I_d)``,
so predicting ``ŵ = 0`` scores 1. Arrays over k are indexed by the number of passes
``k = 0, 1, …, n_steps`` (entry 0 is the starting point ``ŵ_0 = 0``).
"""
from __future__ import annotations

import itertools
import warnings
from typing import Sequence

import torch

from .spectra import DTYPE, check_covariance, hardness


def _check_n(n, name: str = "n") -> None:
    if not isinstance(n, (int, float)) or isinstance(n, bool) or not n >= 1:
        raise ValueError(f"{name} must be a number >= 1, got {n!r}")


def _check_steps(n_steps, name: str = "n_steps") -> None:
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {n_steps!r}")


def _check_square(V: torch.Tensor, d: int, name: str = "V") -> torch.Tensor:
    V = torch.as_tensor(V, dtype=DTYPE)
    if tuple(V.shape) != (d, d):
        raise ValueError(f"{name} must have shape {(d, d)} to match the covariance, got {tuple(V.shape)}")
    return V


def gamma(cov: torch.Tensor, n: float) -> torch.Tensor:
    """``Γ = (1 + 1/n) Λ + (tr Λ / n) I``: the training data's regularised covariance."""
    cov = check_covariance(cov)
    _check_n(n)
    eye = torch.eye(cov.shape[0], dtype=DTYPE)
    return (1 + 1 / n) * cov + torch.trace(cov) / n * eye


def pseudo_newton_v(cov: torch.Tensor, n: float) -> torch.Tensor:
    """``V31* = −Γ⁻¹``: the minimiser of the population direct-prediction loss."""
    return -torch.linalg.inv(gamma(cov, n))


def wishart_second_moment(cov: torch.Tensor, B: torch.Tensor, n: int) -> torch.Tensor:
    """``E[Ŝ B Ŝ]`` for ``Ŝ = X Xᵀ/n`` with n columns ``x ~ N(0, Λ)`` and any square B."""
    cov = check_covariance(cov)
    _check_n(n)
    B = _check_square(B, cov.shape[0], "B")
    one_over_n = (cov @ B @ cov + cov @ B.T @ cov + torch.trace(cov @ B) * cov) / n
    return (n - 1) / n * cov @ B @ cov + one_over_n


def population_error(V: torch.Tensor, cov_test: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Error of k CoT steps ``ŵ ← ŵ + V Σ̂ (ŵ − w)`` when the test prompt is infinitely long.

    Returns a ``(n_steps + 1,)`` tensor: ``||(I + VΣ)^k||_F² / d`` for k = 0..n_steps.
    With ``V = −Γ⁻¹`` this is ``||(I − Γ⁻¹Σ)^k||_F² / d``.
    """
    cov_test = check_covariance(cov_test, "cov_test")
    _check_steps(n_steps)
    d = cov_test.shape[0]
    step = torch.eye(d, dtype=DTYPE) + _check_square(V, d) @ cov_test
    out, power = [], torch.eye(d, dtype=DTYPE)
    for _ in range(n_steps + 1):
        out.append((power ** 2).sum() / d)
        power = step @ power
    return torch.stack(out)


def one_step_error(V: torch.Tensor, cov_test: torch.Tensor, m: int) -> float:
    """Exact error of one pass with a test prompt of ``m`` examples ``x ~ N(0, Σ)``.

    ``(||I + VΣ||_F² + (tr(VΣ²Vᵀ) + tr(VΣVᵀ) tr Σ) / m) / d``.
    """
    cov_test = check_covariance(cov_test, "cov_test")
    _check_n(m, "m")
    d = cov_test.shape[0]
    V = _check_square(V, d)
    bias = ((torch.eye(d, dtype=DTYPE) + V @ cov_test) ** 2).sum()
    var = torch.trace(V @ cov_test @ cov_test @ V.T) + torch.trace(V @ cov_test @ V.T) * torch.trace(cov_test)
    return ((bias + var / m) / d).item()


def mu_spectrum(V: torch.Tensor, cov_test: torch.Tensor) -> torch.Tensor:
    """Eigenvalues ``μ_j`` of ``−VΣ`` (``Γ⁻¹Σ`` for the trained V), ascending.

    A direction contracts under CoT when ``0 < μ < 2`` and expands when ``μ > 2``.
    """
    cov_test = check_covariance(cov_test, "cov_test")
    mu = torch.linalg.eigvals(-_check_square(V, cov_test.shape[0]) @ cov_test)
    return torch.sort(mu.real).values


def scaling_law(cov: torch.Tensor, n: float, n_steps: int) -> torch.Tensor:
    """Upper bound ``(1 + n/(1 + Hard))^(−2k)`` on the error for k = 0..n_steps (Σ = Λ, m → ∞).

    It is an equality for ``Λ = I``.
    """
    _check_n(n)
    _check_steps(n_steps)
    k = torch.arange(n_steps + 1, dtype=DTYPE)
    return (1 + n / (1 + hardness(cov))) ** (-2 * k)


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


def _check_mixture(covs: Sequence[torch.Tensor], probs) -> tuple[list, torch.Tensor]:
    covs = [check_covariance(c, f"covs[{i}]") for i, c in enumerate(covs)]
    if not covs or any(c.shape != covs[0].shape for c in covs):
        raise ValueError("covs must be a non-empty list of same-shape covariances")
    probs = torch.as_tensor(probs, dtype=DTYPE)
    if probs.shape != (len(covs),) or (probs < 0).any() or abs(probs.sum().item() - 1) > 1e-6:
        raise ValueError(f"probs must be {len(covs)} non-negative numbers summing to 1, got {probs.tolist()}")
    return covs, probs


def mixture_optimum(covs: Sequence[torch.Tensor], probs, n: float) -> torch.Tensor:
    """Trained ``V*`` for a mixture of task covariances.

    ``V* = −(Σ π_ℓ Λ_ℓ)(Σ π_ℓ [(1 + 1/n) Λ_ℓ² + (tr Λ_ℓ / n) Λ_ℓ])⁻¹``; ``−Γ⁻¹`` for one task.
    """
    covs, probs = _check_mixture(covs, probs)
    _check_n(n)
    mean = sum(p * c for p, c in zip(probs, covs))
    second = sum(p * ((1 + 1 / n) * c @ c + torch.trace(c) / n * c) for p, c in zip(probs, covs))
    return -mean @ torch.linalg.inv(second)


def selection_objective(covs: Sequence[torch.Tensor], cov_target: torch.Tensor, probs) -> float:
    """``||I − Σ⁻¹ Σ_ℓ π_ℓ Λ_ℓ||_F²``: how far the training mixture is from the target Σ."""
    covs, probs = _check_mixture(covs, probs)
    target = check_covariance(cov_target, "cov_target", definite=True)
    mix = sum(p * c for p, c in zip(probs, covs))
    eye = torch.eye(target.shape[0], dtype=DTYPE)
    return ((eye - torch.linalg.solve(target, mix)) ** 2).sum().item()


def _project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the probability simplex (Duchi et al., 2008)."""
    u = torch.sort(v, descending=True).values
    css = torch.cumsum(u, 0) - 1
    idx = torch.arange(1, len(v) + 1, dtype=v.dtype)
    rho = torch.nonzero(u - css / idx > 0).max()
    return (v - css[rho] / (rho + 1)).clamp(min=0)


def _selection_qp(covs: Sequence[torch.Tensor], cov_target: torch.Tensor):
    """``(Q, b)`` of the selection QP: ``Q_ℓℓ' = <Σ⁻¹Λ_ℓ, Σ⁻¹Λ_ℓ'>_F``, ``b_ℓ = tr(Σ⁻¹Λ_ℓ)``."""
    covs, _ = _check_mixture(covs, torch.full((len(covs),), 1 / max(len(covs), 1)))
    target = check_covariance(cov_target, "cov_target", definite=True)
    if covs[0].shape != target.shape:
        raise ValueError(f"cov_target must have shape {tuple(covs[0].shape)}, "
                         f"got {tuple(target.shape)}")
    A = torch.stack([torch.linalg.solve(target, c).reshape(-1) for c in covs])  # (L, d²)
    return A @ A.T, A @ torch.eye(target.shape[0], dtype=DTYPE).reshape(-1)


def _kkt_residual(Q: torch.Tensor, b: torch.Tensor, pi: torch.Tensor, step: float) -> float:
    """``||π − proj(π − step ∇f(π))||``: zero exactly at the minimisers of the QP."""
    return torch.linalg.norm(pi - _project_simplex(pi - step * 2 * (Q @ pi - b))).item()


def _polish(Q: torch.Tensor, b: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """Smallest move of π on its support that solves the KKT equations there (or π itself).

    On the support S the minimiser satisfies ``2Q_SS π_S + ν 1 = 2b_S``, ``1ᵀπ_S = 1``; the
    pseudo-inverse gives the least-norm correction, which also works when Q is singular.
    """
    S = pi > 0
    size = int(S.sum())
    kkt = torch.zeros(size + 1, size + 1, dtype=DTYPE)
    kkt[:size, :size], kkt[:size, size], kkt[size, :size] = 2 * Q[S][:, S], 1, 1
    rhs = torch.cat([2 * (b[S] - Q[S] @ pi), torch.zeros(1, dtype=DTYPE)])
    new = pi.clone()
    new[S] = pi[S] + (torch.linalg.pinv(kkt) @ rhs)[:size]
    if new.min() < -1e-12:
        return pi
    return new.clamp(min=0) / new.clamp(min=0).sum()


def task_selection(covs: Sequence[torch.Tensor], cov_target: torch.Tensor,
                   n_iter: int = 20000, tol: float = 1e-10) -> torch.Tensor:
    """Probabilities π (shape ``(L,)``) on the simplex minimising ``selection_objective``.

    Objective ``πᵀQπ − 2bᵀπ + d`` with ``Q_ℓℓ' = tr(Λ_ℓ Σ⁻² Λ_ℓ')``, ``b_ℓ = tr(Σ⁻¹ Λ_ℓ)``:
    accelerated projected gradient (FISTA, momentum restarted when it points uphill) from the
    uniform mixture; every 20 steps the KKT equations are solved on the current support. It
    stops when the projected-gradient residual ``||π − proj(π − ∇f(π)/L_f)||`` is ``<= tol``
    and warns (``RuntimeWarning``) if ``n_iter`` steps do not get there. When Q is singular
    the minimiser is not unique: see ``optimal_face``.
    """
    Q, b = _selection_qp(covs, cov_target)
    step = 1 / (2 * torch.linalg.eigvalsh(Q).max().item())
    pi = torch.full((len(b),), 1 / len(b), dtype=DTYPE)
    z, t = pi.clone(), 1.0
    for it in range(n_iter):
        if it % 20 == 0:
            polished = _polish(Q, b, pi)
            if _kkt_residual(Q, b, polished, step) <= tol:
                return polished
        new = _project_simplex(z - step * 2 * (Q @ z - b))
        restart = torch.dot(z - new, new - pi) > 0
        t_new = 1.0 if restart else (1 + (1 + 4 * t * t) ** 0.5) / 2
        z = new if restart else new + (t - 1) / t_new * (new - pi)
        pi, t = new, t_new
    residual = _kkt_residual(Q, b, pi, step)
    if residual > tol:
        warnings.warn(f"task_selection: KKT residual {residual:.3g} > tol = {tol:g} after "
                      f"n_iter = {n_iter} steps; raise n_iter", RuntimeWarning, stacklevel=2)
    return pi


def _flat_directions(Q: torch.Tensor, rtol: float) -> torch.Tensor:
    """``(L, q)`` orthonormal basis of ``{δ: Qδ = 0, 1ᵀδ = 0}`` (eigenvalues ``<= rtol·λ_max``)."""
    lam, vec = torch.linalg.eigh(Q)
    null = vec[:, lam <= rtol * lam.max()]
    if null.shape[1] == 0:
        return null
    _, s, vh = torch.linalg.svd(null.sum(0, keepdim=True))  # keep the part with 1ᵀδ = 0
    return null @ vh[int((s > 1e-12 * null.shape[0] ** 0.5).sum()):].T


def optimal_face(covs: Sequence[torch.Tensor], cov_target: torch.Tensor,
                 rtol: float = 1e-10) -> torch.Tensor:
    """Vertices ``(n_vertices, L)`` of the set of all minimisers of the selection QP.

    Every minimiser shares Qπ, so the set is ``{π in the simplex: π − π* ∈ null(Q)}`` with π*
    from ``task_selection``: a polytope, enumerated exactly by solving for each choice of
    ``q = dim`` zero coordinates (fine for ≲ 10 tasks). One row iff the optimum is unique.
    Eigenvalues of Q below ``rtol·λ_max(Q)`` count as zero (moving along them changes the
    objective by at most that much per unit step squared).
    """
    Q, _ = _selection_qp(covs, cov_target)
    pi = task_selection(covs, cov_target)
    N = _flat_directions(Q, rtol)
    q = N.shape[1]
    vertices = []
    for zeros in itertools.combinations(range(len(pi)), q):
        rows = N[list(zeros)]
        if q and torch.linalg.svdvals(rows).min() < 1e-9:
            continue
        vertex = pi + N @ torch.linalg.solve(rows, -pi[list(zeros)]) if q else pi
        if vertex.min() < -1e-9:
            continue  # outside the simplex
        vertex = vertex.clamp(min=0) / vertex.clamp(min=0).sum()
        if all((vertex - v).abs().max() > 1e-9 for v in vertices):
            vertices.append(vertex)
    return torch.stack(vertices)


def selection_mass_range(covs: Sequence[torch.Tensor], cov_target: torch.Tensor,
                         tasks: Sequence[int]) -> tuple[float, float]:
    """Least and greatest total mass ``Σ_{ℓ ∈ tasks} π_ℓ`` over all minimisers of the QP.

    ``tasks``: indices into ``covs`` (e.g. the hard tasks). The mass is linear in π, so its
    range over the optimal polytope is attained at vertices of ``optimal_face``; equal ends
    mean the QP pins it down even when π itself is not unique.
    """
    idx = list(tasks)
    if not idx or any(not isinstance(i, int) or not 0 <= i < len(covs) for i in idx):
        raise ValueError(f"tasks must be a non-empty list of indices in [0, {len(covs)}), "
                         f"got {idx}")
    mass = optimal_face(covs, cov_target)[:, idx].sum(1)
    return mass.min().item(), mass.max().item()
