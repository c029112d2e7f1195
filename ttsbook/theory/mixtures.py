"""Training mixtures in closed form (float64): the trained ``V*`` of a mixture, its true error,
the task-selection QP (a proxy) and the mixture that minimises the true error directly."""
from __future__ import annotations

import itertools
import warnings
from typing import Sequence

import torch

from ..checks import DTYPE, check_number
from ..spectra import check_covariance, check_mixture
from .population import population_error


def mixture_optimum(covs: Sequence[torch.Tensor], probs, n: float) -> torch.Tensor:
    """Trained ``V*`` for a mixture of task covariances.

    ``V* = −(Σ π_ℓ Λ_ℓ)(Σ π_ℓ [(1 + 1/n) Λ_ℓ² + (tr Λ_ℓ / n) Λ_ℓ])⁻¹``;
    ``−Γ⁻¹`` for one task.
    """
    covs, probs = check_mixture(covs, probs)
    check_number(n, "n", 1)
    mean = sum(p * c for p, c in zip(probs, covs))
    second = sum(p * ((1 + 1 / n) * c @ c + torch.trace(c) / n * c) for p, c in zip(probs, covs))
    return -mean @ torch.linalg.inv(second)


def selection_objective(covs: Sequence[torch.Tensor], test_cov: torch.Tensor, probs) -> float:
    """``||I − Σ⁻¹ Σ_ℓ π_ℓ Λ_ℓ||_F²``: how far the training mixture is from the
    target Σ."""
    covs, probs = check_mixture(covs, probs)
    target = check_covariance(test_cov, "test_cov", definite=True)
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


def _selection_qp(covs: Sequence[torch.Tensor], test_cov: torch.Tensor):
    """``(Q, b)`` of the selection QP: ``Q_ℓℓ' = <Σ⁻¹Λ_ℓ, Σ⁻¹Λ_ℓ'>_F``,
    ``b_ℓ = tr(Σ⁻¹Λ_ℓ)``."""
    covs, _ = check_mixture(covs)
    target = check_covariance(test_cov, "test_cov", definite=True)
    if covs[0].shape != target.shape:
        raise ValueError(f"test_cov must have shape {tuple(covs[0].shape)}, "
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


def task_selection(covs: Sequence[torch.Tensor], test_cov: torch.Tensor,
                   n_iter: int = 20000, tol: float = 1e-10) -> torch.Tensor:
    """Probabilities π (shape ``(L,)``) on the simplex minimising ``selection_objective``.

    Objective ``πᵀQπ − 2bᵀπ + d`` with ``Q_ℓℓ' = tr(Λ_ℓ Σ⁻² Λ_ℓ')``,
    ``b_ℓ = tr(Σ⁻¹ Λ_ℓ)``: accelerated projected gradient (FISTA, momentum restarted when
    it points uphill) from the uniform mixture; every 20 steps the KKT equations are solved on
    the current support. It stops when the projected-gradient residual
    ``||π − proj(π − ∇f(π)/L_f)||`` is ``<= tol`` and warns (``RuntimeWarning``) if
    ``n_iter`` steps do not get there. When Q is singular the minimiser is not unique: see
    ``optimal_face``.
    """
    Q, b = _selection_qp(covs, test_cov)
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
    """``(L, q)`` orthonormal basis of ``{δ: Qδ = 0, 1ᵀδ = 0}`` (eigenvalues
    ``<= rtol·λ_max``)."""
    lam, vec = torch.linalg.eigh(Q)
    null = vec[:, lam <= rtol * lam.max()]
    if null.shape[1] == 0:
        return null
    _, s, vh = torch.linalg.svd(null.sum(0, keepdim=True))  # keep the part with 1ᵀδ = 0
    return null @ vh[int((s > 1e-12 * null.shape[0] ** 0.5).sum()):].T


def optimal_face(covs: Sequence[torch.Tensor], test_cov: torch.Tensor,
                 rtol: float = 1e-10) -> torch.Tensor:
    """Vertices ``(n_vertices, L)`` of the set of all minimisers of the selection QP.

    Every minimiser shares Qπ, so the set is ``{π in the simplex: π − π* ∈ null(Q)}`` with
    π* from ``task_selection``: a polytope, enumerated exactly by solving for each choice of
    ``q = dim`` zero coordinates (fine for ≲ 10 tasks). One row iff the optimum is unique.
    Eigenvalues of Q below ``rtol·λ_max(Q)`` count as zero (moving along them changes the
    objective by at most that much per unit step squared).
    """
    Q, _ = _selection_qp(covs, test_cov)
    pi = task_selection(covs, test_cov)
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


def selection_mass_range(covs: Sequence[torch.Tensor], test_cov: torch.Tensor,
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
    mass = optimal_face(covs, test_cov)[:, idx].sum(1)
    return mass.min().item(), mass.max().item()


def mixture_error(covs: Sequence[torch.Tensor], probs, test_cov: torch.Tensor, n: float,
                  n_steps: int) -> torch.Tensor:
    """Population error (k = 0..n_steps) on ``test_cov`` of the LSA trained on the mixture."""
    return population_error(mixture_optimum(covs, probs, n), test_cov, n_steps)


def best_mixture(covs: Sequence[torch.Tensor], test_cov: torch.Tensor, n: float, n_steps: int,
                 iters: int = 500, eta: float = 0.05) -> torch.Tensor:
    """Mixture minimising the *true* population error at ``n_steps`` (not the QP proxy).

    The error is smooth but not convex in π: Adam on softmax logits from the uniform mixture,
    deterministic (no randomness), float64, ``iters`` steps of size ``eta`` (Adam's learning
    rate). Returns probabilities over ``covs``.
    """
    logits = torch.zeros(len(covs), dtype=DTYPE, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=eta)
    for _ in range(iters):
        loss = mixture_error(covs, torch.softmax(logits, 0), test_cov, n, n_steps)[-1].log()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.softmax(logits.detach(), 0)
