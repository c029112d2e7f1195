"""Plan the training context n and the number of passes k before training anything.

:func:`plan` answers: "to reach error ε on test prompts of m examples, which (n, k) should I
train and run, and which k are safe from divergence?" It uses only the closed forms of
:mod:`ttsbook.theory` for the closed-form trained LSA ``V = −Γ⁻¹`` with test features from the
training distribution (Σ = Λ):

* m → ∞ (``m=None``): the exact population error ``||(I − Γ⁻¹Λ)^k||_F²/d`` when a covariance
  is given (``context_needed``), or the scaling-law bound ``n*(k) = (1 + Hard)(ε^(−1/2k) − 1)``
  when only the hardness is (``n_star``: an upper bound on the error, so a conservative plan);
* finite m: ``finite_prompt_error`` (Marchenko–Pastur law), derived for isotropic training
  Λ = σI only. Its error at fixed k stops falling as n grows (a *floor*), so some ε are out of
  reach; and above ``divergence_threshold(d, m)`` the typical prompt's ``Γ⁻¹Ŝ_m`` has an
  eigenvalue above 2, so extra passes expand the error. A frontier point (n*(k), k) is *safe*
  when n*(k) is below that threshold; in population (Σ = Λ) every μ_j < 1 and all k are safe.
  In distribution the frontier stays below the threshold (each k's error bottoms out near
  n = m, below it), so the safe k are those that reach ε at all: ``k_safe = (k_lo, k_hi)``.

Cost model: ``cost = cost_train·n + cost_pass·k``, a training-context example against one
forward pass (put the number of queries served into ``cost_pass`` to amortise training).
Errors are per coordinate, ``E||ŵ_k − w||²/d`` (1 for ``ŵ = 0``).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import numpy as np
import torch

from .checks import DTYPE, BadValue, check_int, check_number
from .spectra import check_covariance, hardness
from .theory import (context_needed, divergence_threshold, finite_prompt_error, n_star,
                     population_error, pseudo_newton_v, scaling_law)

COST_MODEL = "cost = cost_train·n + cost_pass·k"


@dataclass(frozen=True, eq=False)  # eq would compare arrays element-wise
class Plan:
    """What :func:`plan` found. Arrays are over ``ks = 1..n_steps``; ``inf`` = out of reach.

    ``n_frontier``: real n*(k) at which the planned error equals ε; ``n_needed``: the smallest
    integer n reaching ε (``inf`` if none up to ``n_max``); ``floor``: the smallest error the
    model reaches with k passes over n ≤ ``n_max`` (0 in population); ``safe``: whether the
    frontier point lies below ``n_diverge``; ``n``, ``k``, ``cost``, ``error``: the cheapest
    safe point, the fewest passes among equal costs (``None`` when no safe point reaches ε,
    see ``reason``).
    """

    eps: float
    m: int | None
    model: str
    ks: np.ndarray
    n_frontier: np.ndarray
    n_needed: np.ndarray
    floor: np.ndarray
    n_diverge: float
    safe: np.ndarray
    cost_train: float
    cost_pass: float
    n: int | None
    k: int | None
    cost: float | None
    error: float | None
    reason: str = ""

    @property
    def k_safe(self) -> tuple[int, int] | None:
        """``(k_lo, k_hi)``: the safe k that reach ε (contiguous: n*(k) falls with k)."""
        ok = self.ks[self.safe & np.isfinite(self.n_needed)]
        return (int(ok.min()), int(ok.max())) if ok.size else None

    def costs(self) -> np.ndarray:
        """``cost_train·n_needed(k) + cost_pass·k`` for every k (``inf`` if out of reach)."""
        return self.cost_train * self.n_needed + self.cost_pass * self.ks


def _spectrum(d: int, spectrum) -> tuple[torch.Tensor | None, float]:
    """``(cov or None, Hard)`` from a (d, d) covariance or a hardness ``>= d``."""
    if isinstance(spectrum, numbers.Real) and not isinstance(spectrum, bool):
        if not d <= spectrum < math.inf:
            raise BadValue("spectrum", f"spectrum as a hardness must be a number in "
                                       f"[d, inf) = [{d}, inf), got {spectrum!r}")
        return None, float(spectrum)
    try:
        cov = check_covariance(spectrum, "spectrum", definite=True)
    except (ValueError, TypeError, RuntimeError) as err:
        raise BadValue("spectrum", f"bad spectrum: {err}") from None
    if cov.shape != (d, d):
        raise BadValue("spectrum", f"spectrum must be a ({d}, {d}) covariance, "
                                   f"got shape {tuple(cov.shape)}")
    return cov, hardness(cov)


def _check(n_dims, m, eps, cost_train, cost_pass, n_steps, n_max) -> int | None:
    check_int(n_dims, "n_dims")
    if m is not None and m != math.inf:
        m = check_int(m, "m")
    check_number(eps, "eps", 0, strict=True, high=1)  # ŵ = 0 already scores 1
    check_number(cost_train, "cost_train", 0, strict=True, high=math.inf)
    check_number(cost_pass, "cost_pass", 0, strict=True, high=math.inf)
    check_int(n_steps, "n_steps")
    check_number(n_max, "n_max", 1, strict=True, high=math.inf)
    return None if m in (None, math.inf) else m


def _population_error(cov, hard, n: float, k: int) -> float:
    """Planned error after k passes, m → ∞: exact for a covariance, the law for a hardness."""
    if cov is None:
        return scaling_law(hard, n, k)[k].item()
    return population_error(pseudo_newton_v(cov, n), cov, k)[k].item()


def _population_frontier(cov, hard, eps, ks, n_max):
    """``n*(k)`` at m → ∞ (``inf`` beyond ``n_max``); the error falls as n grows."""
    if cov is None:
        return np.maximum(n_star(hard, ks, eps).numpy(), 1.0)
    out = []
    for k in ks:
        try:
            out.append(context_needed(cov, int(k), eps, n_max=n_max))
        except ValueError:  # even n_max does not reach eps
            out.append(math.inf)
    return np.array(out)


def _finite_errors(cov, m: int, n, n_steps: int) -> np.ndarray:
    """``finite_prompt_error`` of the trained map at context(s) n: (len(n), n_steps)."""
    rows = [finite_prompt_error(pseudo_newton_v(cov, float(x)), cov, m, n_steps)[1:]
            for x in np.atleast_1d(n)]
    return torch.stack(rows).numpy()


def _finite_frontier(cov, m, eps, ks, n_max, n_grid: int = 100, n_bisect: int = 16):
    """First n at which the finite-m error after k passes reaches ``eps``, and each k's floor.

    The error is not monotone in n at finite m (it bottoms out, then may rise), so a log
    grid on [1, n_max] finds the first crossing, and bisection refines it.
    """
    grid = np.geomspace(1, n_max, n_grid)
    err = _finite_errors(cov, m, grid, len(ks))                  # (n_grid, K)
    frontier = np.full(len(ks), math.inf)
    for j in range(len(ks)):
        hit = np.flatnonzero(err[:, j] <= eps)
        if not hit.size:
            continue
        if hit[0] == 0:
            frontier[j] = 1.0
            continue
        lo, hi = grid[hit[0] - 1], grid[hit[0]]
        for _ in range(n_bisect):
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if _finite_errors(cov, m, mid, j + 1)[0, j] > eps else (lo, mid)
        frontier[j] = hi
    return frontier, err.min(0)


def _integer_needed(error, frontier: np.ndarray, ks, eps: float) -> np.ndarray:
    """Smallest integer n >= n*(k) whose planned error after k passes is <= eps (or inf)."""
    out = np.full(len(ks), math.inf)
    for j, (n, k) in enumerate(zip(frontier, ks)):
        # floor(n) too: a bisection's n* can sit a hair above an integer that reaches eps
        for cand in range(max(1, math.floor(n)), math.ceil(n) + 2) if math.isfinite(n) else ():
            if error(cand, int(k)) <= eps * (1 + 1e-9):
                out[j] = cand
                break
    return out


def plan(n_dims: int, spectrum, m: int | None, eps: float, cost_train: float, cost_pass: float,
         n_steps: int = 20, n_max: float = 1e4) -> Plan:
    """The frontier n*(k), the cheapest (n, k) and the safe k for target error ``eps``.

    Args:
        n_dims: dimension d. spectrum: the training covariance Λ, (d, d) positive definite, or its
            hardness ``Hard = tr Λ / λ_min >= d`` (then the scaling law plans, m → ∞ only).
        m: test prompt length; ``None`` (or ``inf``) for infinitely long prompts. Finite m
            needs isotropic training (Λ = σI, or Hard = d): ``finite_prompt_error``'s law.
        eps: target error per coordinate, in (0, 1). cost_train, cost_pass: > 0, see
            ``COST_MODEL``. n_steps: plans k = 1..n_steps. n_max: largest n considered.
    Test features come from the training distribution (Σ = Λ). Bad arguments raise a
    one-line :class:`BadValue` naming the argument.
    """
    m = _check(n_dims, m, eps, cost_train, cost_pass, n_steps, n_max)
    cov, hard = _spectrum(n_dims, spectrum)
    ks = np.arange(1, n_steps + 1)
    if m is None:
        model = "population, scaling law" if cov is None else "population, exact"
        frontier, floor = _population_frontier(cov, hard, eps, ks, n_max), np.zeros(n_steps)
        n_div = math.inf

        def error(n, k):
            return _population_error(cov, hard, n, k)
    else:
        if hard > n_dims * (1 + 1e-9):
            raise BadValue("m", f"finite m needs isotropic training (Hard = d = {n_dims}), got "
                                f"Hard = {hard:.4g}; pass m=None to plan for m → ∞")
        cov = torch.eye(n_dims, dtype=DTYPE) if cov is None else cov
        model, n_div = "finite m, Marchenko–Pastur", divergence_threshold(n_dims, m)
        frontier, floor = _finite_frontier(cov, m, eps, ks, n_max)

        def error(n, k):
            return float(_finite_errors(cov, m, n, k)[0, k - 1])
    needed = _integer_needed(error, frontier, ks, eps)
    return _cheapest(Plan(eps, m, model, ks, frontier, needed, floor, n_div, needed <= n_div,
                          cost_train, cost_pass, None, None, None, None), error)


def _cheapest(result: Plan, error) -> Plan:
    """``result`` with its cheapest safe point filled in, or the reason there is none."""
    costs = np.where(result.safe, result.costs(), math.inf)
    if not np.isfinite(costs).any():
        floor = result.floor.min()
        why = (f"error floor {floor:.3g} > eps = {result.eps:g} for k <= {result.ks[-1]}"
               if floor > result.eps else
               f"every k that reaches eps needs n above the divergence threshold "
               f"{result.n_diverge:.1f}")
        return replace(result, reason=why)
    j = int(np.argmin(costs))
    n, k = int(result.n_needed[j]), int(result.ks[j])
    return replace(result, n=n, k=k, cost=float(costs[j]), error=error(n, k))
