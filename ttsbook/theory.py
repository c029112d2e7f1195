"""Closed forms of the paper (float64), as the book states and checks them against Monte Carlo.

Convention: every *error* here is per coordinate, ``E||ŵ − w||² / d`` with ``w ~ N(0, I_d)``,
so predicting ``ŵ = 0`` scores 1. Arrays over k are indexed by the number of passes
``k = 0, 1, …, n_steps`` (entry 0 is the starting point ``ŵ_0 = 0``).
"""
from __future__ import annotations

import itertools
import warnings
from typing import Sequence

import numpy as np
import torch

from .checks import check_int, check_number
from .spectra import DTYPE, check_covariance, hardness, isotropic
from .tasks import RegressionTask


def _check_square(V: torch.Tensor, d: int, name: str = "V") -> torch.Tensor:
    V = torch.as_tensor(V, dtype=DTYPE)
    if tuple(V.shape) != (d, d):
        raise ValueError(f"{name} must have shape {(d, d)} to match the covariance, "
                         f"got {tuple(V.shape)}")
    return V


def gamma(cov: torch.Tensor, n: float) -> torch.Tensor:
    """``Γ = (1 + 1/n) Λ + (tr Λ / n) I``: the training data's regularised covariance."""
    cov = check_covariance(cov)
    check_number(n, "n", 1)
    eye = torch.eye(cov.shape[0], dtype=DTYPE)
    return (1 + 1 / n) * cov + torch.trace(cov) / n * eye


def pseudo_newton_v(cov: torch.Tensor, n: float) -> torch.Tensor:
    """``V31* = −Γ⁻¹``: the minimiser of the population direct-prediction loss."""
    return -torch.linalg.inv(gamma(cov, n))


def wishart_second_moment(cov: torch.Tensor, B: torch.Tensor, n: int) -> torch.Tensor:
    """``E[Ŝ B Ŝ]`` for ``Ŝ = X Xᵀ/n`` with n columns ``x ~ N(0, Λ)`` and any square B."""
    cov = check_covariance(cov)
    check_number(n, "n", 1)
    B = _check_square(B, cov.shape[0], "B")
    one_over_n = (cov @ B @ cov + cov @ B.T @ cov + torch.trace(cov @ B) * cov) / n
    return (n - 1) / n * cov @ B @ cov + one_over_n


def population_error(V: torch.Tensor, cov_test: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Error of k CoT steps ``ŵ ← ŵ + V Σ̂ (ŵ − w)`` when the test prompt is infinitely long.

    Returns a ``(n_steps + 1,)`` tensor: ``||(I + VΣ)^k||_F² / d`` for k = 0..n_steps.
    With ``V = −Γ⁻¹`` this is ``||(I − Γ⁻¹Σ)^k||_F² / d``.
    """
    cov_test = check_covariance(cov_test, "cov_test")
    check_int(n_steps, "n_steps", low=0)
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
    check_number(m, "m", 1)
    d = cov_test.shape[0]
    V = _check_square(V, d)
    bias = ((torch.eye(d, dtype=DTYPE) + V @ cov_test) ** 2).sum()
    var = (torch.trace(V @ cov_test @ cov_test @ V.T)
           + torch.trace(V @ cov_test @ V.T) * torch.trace(cov_test))
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
    check_number(n, "n", 1)
    check_int(n_steps, "n_steps", low=0)
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
        raise ValueError(f"probs must be {len(covs)} non-negative numbers summing to 1, "
                         f"got {probs.tolist()}")
    return covs, probs


def mixture_optimum(covs: Sequence[torch.Tensor], probs, n: float) -> torch.Tensor:
    """Trained ``V*`` for a mixture of task covariances.

    ``V* = −(Σ π_ℓ Λ_ℓ)(Σ π_ℓ [(1 + 1/n) Λ_ℓ² + (tr Λ_ℓ / n) Λ_ℓ])⁻¹``; ``−Γ⁻¹`` for one task.
    """
    covs, probs = _check_mixture(covs, probs)
    check_number(n, "n", 1)
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


# ------------------------------------------------ finite test prompts: Marchenko–Pastur laws
def _check_ratio(ratio) -> float:
    number = isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
    if not number or not 0 < ratio < float("inf"):
        raise ValueError(f"ratio must be a finite number > 0 (γ = d/m), got {ratio!r}")
    return float(ratio)


def mp_edges(ratio: float) -> tuple[float, float]:
    """Edges ``λ± = (1 ± √γ)²`` of the Marchenko–Pastur law (Σ = I, ratio ``γ = d/m``)."""
    root = _check_ratio(ratio) ** 0.5
    return (1 - root) ** 2, (1 + root) ** 2


def mp_density(x, ratio: float) -> torch.Tensor:
    """Marchenko–Pastur density ``√((λ₊ − x)(x − λ₋)) / (2πγx)`` of ``Ŝ = XᵀX/m``, Σ = I.

    ``x``: any shape, returns the same shape (float64). Only the continuous part: for
    ``γ > 1`` the law also has an atom of mass ``1 − 1/γ`` at 0 (Ŝ has rank m < d).
    """
    low, high = mp_edges(ratio)
    x = torch.as_tensor(x, dtype=DTYPE)
    inside = (x > low) & (x < high)
    root = ((high - x) * (x - low)).clamp(min=0).sqrt()
    return torch.where(inside, root / (2 * torch.pi * ratio * x.clamp(min=1e-300)), 0.0)


def _silverstein_density(x: np.ndarray, t: np.ndarray, w: np.ndarray, ratio: float) -> np.ndarray:
    """Density at ``x`` (> 0) of the limiting spectrum of Ŝ for population eigenvalues ``t``.

    The companion Stieltjes transform s = m̲(z) solves Silverstein's equation
    ``z = −1/s + γ Σ_i w_i t_i / (1 + t_i s)`` (``w_i``: weights of ``t_i``). Newton steps
    follow the root with Im s > 0 from ``z = x + i·scale`` (where s ≈ −1/z) down to
    ``z = x + i·1e-12·scale``; the density is ``Im s / (πγ)``.
    """
    scale = t.max() * (1 + ratio ** 0.5) ** 2
    z = x + 1j * scale
    s = -1 / z
    for eta in scale * 0.7 ** np.arange(80):
        z = x + 1j * eta
        for _ in range(4):
            frac = t / (1 + t * s[:, None])
            f = -1 / s + ratio * (w * frac).sum(1) - z
            s = s - f / (1 / s ** 2 - ratio * (w * frac ** 2).sum(1))
    return np.clip(s.imag, 0, None) / (np.pi * ratio)


def _isotropic_quadrature(ratio: float, d: int, n_nodes: int):
    """Nodes and weights for ``E tr g(Ŝ_m)/d`` when Σ = I, up to O(d⁻²).

    Marchenko–Pastur part (Chebyshev nodes on [λ₋, λ₊], an atom ``1 − 1/γ`` at 0 if γ > 1)
    plus the real-Gaussian 1/d correction of Bai & Silverstein (2004, Thm 1.1):
    ``[(g(λ₋) + g(λ₊))/4 − (1/2π)∫₀^π g(1 + γ + 2√γ cos θ) dθ] / d``.
    """
    low, high = mp_edges(ratio)
    theta = (torch.arange(n_nodes, dtype=DTYPE) + 0.5) * torch.pi / n_nodes
    lam = (low + high) / 2 - (high - low) / 2 * torch.cos(theta)
    weight = (high - low) ** 2 / 4 * torch.sin(theta) ** 2 / (2 * ratio * lam * n_nodes)
    edges = torch.tensor([0.0, low, high], dtype=DTYPE)
    edge_weight = torch.tensor([max(0.0, 1 - 1 / ratio), 1 / (4 * d), 1 / (4 * d)], dtype=DTYPE)
    correction = torch.full((n_nodes,), -1 / (2 * n_nodes * d), dtype=DTYPE)
    return torch.cat([edges, lam, lam]), torch.cat([edge_weight, weight, correction])


def _spectral_quadrature(cov_test: torch.Tensor, m: int, n_nodes: int = 4000):
    """Nodes λ_j and weights w_j with ``Σ_j w_j g(λ_j) ≈ E tr g(Ŝ_m) / d`` for smooth g.

    Σ = σI: ``_isotropic_quadrature`` scaled by σ (error O(d⁻²)). Otherwise the limiting
    generalised Marchenko–Pastur law of ratio γ = d/m and population Σ (error O(1/d)): density
    from Silverstein's equation on a log grid, plus an atom ``1 − min(1/γ, rank Σ / d)`` at 0.
    """
    eig = torch.linalg.eigvalsh(cov_test).clamp(min=0)
    d, ratio, top = len(eig), eig.shape[0] / m, eig.max().item()
    if (top - eig.min()).item() <= 1e-12 * top:
        lam, weight = _isotropic_quadrature(ratio, d, n_nodes)
        return lam * top, weight
    positive = eig[eig > 1e-12 * top]
    t, counts = np.unique(np.round(positive.numpy(), 12), return_counts=True)
    low = max(t.min() * (1 - (len(positive) / m) ** 0.5) ** 2, 1e-12 * top)  # rank Σ dims
    high = top * (1 + ratio ** 0.5) ** 2
    grid = low * (high / low) ** ((np.arange(n_nodes) + 0.5) / n_nodes)  # log-spaced
    dens = _silverstein_density(grid, t, counts / d, ratio)
    weight = torch.as_tensor(dens * grid * np.log(high / low) / n_nodes)
    atom = torch.tensor([1 - min(1 / ratio, len(positive) / d)], dtype=DTYPE)
    nodes = torch.cat([torch.zeros(1, dtype=DTYPE), torch.as_tensor(grid)])
    return nodes, torch.cat([atom, weight])


def _scalar_step(V: torch.Tensor, d: int) -> float:
    """``c`` when ``V = −c·I`` (isotropic training), else ``ValueError``."""
    V = _check_square(V, d)
    c = -V[0, 0].item()
    if (V + c * torch.eye(d, dtype=DTYPE)).abs().max().item() > 1e-12 * max(abs(c), 1e-300):
        raise ValueError("V must be a multiple of the identity, V = −c·I (isotropic training, "
                         "c = n/(n+d+1)); the finite-m law is not derived for other V")
    return c


def finite_prompt_error(V: torch.Tensor, cov_test: torch.Tensor, m: int,
                        n_steps: int) -> torch.Tensor:
    """Error of k passes on a test prompt of ``m`` examples, k = 0..n_steps: ``(n_steps+1,)``.

    For ``V = −c·I`` (isotropic training, c = n/(n+d+1)) the error is
    ``E tr (I − cŜ_m)^{2k} / d``, a spectral function of Ŝ_m (``ValueError`` for other V).
    k = 0 and k = 1 are exact (``one_step_error``). For k ≥ 2 it is an approximation, not an
    exact value: ``∫ (1 − cλ)^{2k} dF`` with F the Marchenko–Pastur law of ratio γ = d/m
    (see ``_spectral_quadrature``). Σ = σI adds the real-Gaussian 1/d correction; any other
    Σ uses the limiting generalised law only, off by O(1/d). Neither sees the d^(-2/3)
    fluctuations of the extreme eigenvalues, which dominate once k is large. Measured
    against Monte Carlo (Σ = I, n = 20) the isotropic form is within 3% for k <= 6 at
    d = 10 and m >= 4d, for k <= 12 at d = 20 and m >= 1.5d; at d = 10, m = 2d only up to
    k = 2. It fails badly near divergence (n/(n+d+1)·λ₊ near 2; see ``divergence_threshold``),
    where rare prompts dominate the mean, and underestimates at large k (0.83 at d = 10,
    m = 4d, k = 12; 0.27 at d = 10, m = 8d, k = 24).
    """
    cov_test = check_covariance(cov_test, "cov_test")
    d = cov_test.shape[0]
    check_number(m, "m", 1)
    check_int(n_steps, "n_steps", low=0)
    c = _scalar_step(V, d)
    lam, weight = _spectral_quadrature(cov_test, m)
    k = torch.arange(n_steps + 1, dtype=DTYPE)
    out = (weight[None, :] * (1 - c * lam[None, :]) ** (2 * k[:, None])).sum(1)
    out[0] = 1.0
    if n_steps >= 1:
        out[1] = one_step_error(V, cov_test, m)
    return out


def divergence_threshold(d: int, m: int) -> float:
    """Training context n above which an isotropic test prompt of m examples overthinks.

    Λ = Σ = I: the k-step map multiplies the top direction of Ŝ_m by ``1 − n/(n+d+1)·λ_max``;
    at the Marchenko–Pastur edge ``λ₊ = (1 + √(d/m))²`` it expands once
    ``n/(n+d+1)·λ₊ > 2``, i.e. ``n > 2(d+1)/(λ₊ − 2)``. ``inf`` when ``λ₊ <= 2`` (m ≳ 5.83d).
    """
    check_number(d, "d", 1)
    check_number(m, "m", 1)
    high = mp_edges(d / m)[1]
    return 2 * (d + 1) / (high - 2) if high > 2 else float("inf")


def divergent_fraction(d: int, n: float, m: int, n_prompts: int = 2000, seed: int = 0) -> float:
    """Monte Carlo fraction of isotropic test prompts on which CoT diverges (Λ = Σ = I).

    A prompt diverges when the top eigenvalue of ``Γ⁻¹Ŝ_m = n/(n+d+1)·Ŝ_m`` exceeds 2 (float64
    ``eigvalsh``). Prompts: ``RegressionTask(I_d).sample(m, ·, seed=seed, step=j,
    split="eval")`` in chunks j = 0, 1, … of at most 1000 prompts.
    """
    for name, value in (("m", m), ("n_prompts", n_prompts)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    c = -pseudo_newton_v(isotropic(d), n)[0, 0].item()
    task, top = RegressionTask(isotropic(d)), []
    for step, start in enumerate(range(0, n_prompts, 1000)):
        X = task.sample(m, min(1000, n_prompts - start), seed=seed, step=step, split="eval",
                        dtype=DTYPE).X
        top.append(torch.linalg.eigvalsh(X.transpose(1, 2) @ X / m)[:, -1])
    return (c * torch.cat(top) > 2).double().mean().item()
