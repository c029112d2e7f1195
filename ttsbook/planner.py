"""Plan the training context n and the number of passes k before training anything.

:func:`plan` answers: "to reach error ε on test prompts of m examples, which (n, k) should I
train and run, and what does that promise: for the mean, the median, and how many prompts
diverge?" It uses only the closed forms of :mod:`ttsbook.theory` for the closed-form trained
LSA ``V = −Γ⁻¹`` with test features from the training distribution (Σ = Λ):

* m → ∞ (``m=None``): the exact population error ``||(I − Γ⁻¹Λ)^k||_F²/d`` when a covariance
  is given (``context_needed``), or the scaling-law bound ``n*(k) = (1 + Hard)(ε^(−1/2k) − 1)``
  when only the hardness is (``n_star``: an upper bound on the error, so a conservative plan).
  Every prompt is the population: mean = median, no prompt diverges, every k is safe.
* finite m: ``finite_prompt_error`` (Marchenko–Pastur law), derived for isotropic training
  Λ = σI only; the smallest integer n reaching ε is found by an exact integer search (the
  error is unimodal in n at fixed k). Its error at fixed k stops falling as n grows (a
  *floor*), so some ε are out of reach within ``n_max``. That law describes the typical
  prompt. **The mean over prompts is another matter**: a prompt's top eigenvalue of
  ``Γ⁻¹Ŝ_m`` has no upper bound, so a positive fraction ``tail`` of prompts diverges and
  the mean error grows without bound in k. The plan therefore also reports, at its (n, k),
  the exact Monte Carlo mean and median (``stats``, :func:`ttsbook.theory.tail_stats`), the
  *horizon*: the last k up to which the mean stays at or below ``max(ε, mean at k)``,
  and ``tail``, the Tracy–Widom probability that a prompt diverges.

Cost model (``COST_MODEL``): ``cost = cost_train·n + cost_pass·k`` (a pass costs the same
whatever the prompt), or with ``per_token=True`` a pass costs ``cost_pass`` per token it
reads: pass j reads the m examples and the j − 1 earlier thoughts, so k passes cost
``cost_pass·(k·m + k(k − 1)/2)`` (a transformer's pass grows with m + k). Put the number of
queries served into ``cost_pass`` to amortise training. Errors are per coordinate,
``E||ŵ_k − w||²/d`` (1 for ``ŵ = 0``).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import numpy as np
import torch

from .checks import DTYPE, BadValue, check_int, check_number
from .spectra import check_covariance, hardness
from .theory import (TailStats, context_needed, divergence_probability, divergence_threshold,
                     finite_prompt_error, n_star, population_error, pseudo_newton_v, scaling_law,
                     tail_stats)

COST_MODEL = ("cost = cost_train·n + cost_pass·k; per_token=True: "
              "cost = cost_train·n + cost_pass·(k·m + k(k−1)/2)")


@dataclass(frozen=True, eq=False)  # eq would compare arrays element-wise
class Plan:
    """What :func:`plan` found. Arrays are over ``ks = 1..n_steps``; ``inf`` = out of reach.

    ``n_frontier``: real n*(k) at which the planned error equals ε; ``n_needed``: the smallest
    integer n reaching ε (``inf`` if none up to ``n_max``); ``floor``: the smallest error the
    model reaches with k passes over integer n ≤ ``n_max`` (0 in population);
    ``median_safe``: whether n_needed(k) lies below ``n_diverge``, where the Marchenko–Pastur
    edge of ``Γ⁻¹Ŝ_m`` reaches 2 (the *typical* prompt then contracts in every direction and
    its error keeps falling for all k; it says nothing of the mean, see ``horizon``);
    ``n``, ``k``, ``cost``, ``error``: the cheapest median-safe point, the fewest passes
    among equal costs (``None`` when none reaches ε, see ``reason``). At that point:
    ``tail``: the probability that a test prompt diverges (Tracy–Widom edge; 0 in
    population); ``stats``: Monte Carlo over ``n_prompts`` prompts of the exact per-prompt
    errors for k = 0..``k_eval`` (mean, median, bootstrap CIs, diverging prompts seen;
    ``None`` in population or when ``n_prompts=0``); ``horizon``: the last k up to which
    the Monte Carlo mean stays at or below ``max(ε, mean at k)`` (``k_eval``: at least
    that far; ``inf`` in population, where the error only falls).
    """

    eps: float
    m: int | None
    model: str
    ks: np.ndarray
    n_frontier: np.ndarray
    n_needed: np.ndarray
    floor: np.ndarray
    n_diverge: float
    median_safe: np.ndarray
    cost_train: float
    cost_pass: float
    n: int | None
    k: int | None
    cost: float | None
    error: float | None
    reason: str = ""
    per_token: bool = False
    tail: float | None = None
    stats: TailStats | None = None
    horizon: float | None = None
    k_eval: int | None = None

    @property
    def k_median_safe(self) -> tuple[int, int] | None:
        """``(k_lo, k_hi)``: the median-safe k that reach ε (contiguous: n*(k) falls with k)."""
        ok = self.ks[self.median_safe & np.isfinite(self.n_needed)]
        return (int(ok.min()), int(ok.max())) if ok.size else None

    @property
    def cost_formula(self) -> str:
        """The cost model this plan uses (see ``COST_MODEL``)."""
        return ("cost = cost_train·n + cost_pass·(k·m + k(k−1)/2)" if self.per_token
                else "cost = cost_train·n + cost_pass·k")

    def pass_units(self, k) -> np.ndarray:
        """What k passes cost in units of ``cost_pass``: k, or the tokens they read."""
        k = np.asarray(k, dtype=float)
        return k * self.m + k * (k - 1) / 2 if self.per_token else k

    def costs(self) -> np.ndarray:
        """``cost_train·n_needed(k) + cost_pass·pass_units(k)`` for every k (``inf`` if out
        of reach)."""
        return self.cost_train * self.n_needed + self.cost_pass * self.pass_units(self.ks)

    @property
    def mean_error(self) -> float | None:
        """The Monte Carlo mean error at the plan's (n, k) (``error`` in population)."""
        if self.stats is None:
            return self.error if self.m is None else None
        return float(self.stats.mean[self.k])

    @property
    def median_error(self) -> float | None:
        """The Monte Carlo median error at the plan's (n, k) (``error`` in population)."""
        if self.stats is None:
            return self.error if self.m is None else None
        return float(self.stats.median[self.k])


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


def _check(n_dims, m, eps, cost_train, cost_pass, n_steps, n_max, per_token) -> int | None:
    check_int(n_dims, "n_dims")
    if m is not None and m != math.inf:
        m = check_int(m, "m")
    check_number(eps, "eps", 0, strict=True, high=1)  # ŵ = 0 already scores 1
    check_number(cost_train, "cost_train", 0, strict=True, high=math.inf)
    check_number(cost_pass, "cost_pass", 0, strict=True, high=math.inf)
    check_int(n_steps, "n_steps")
    check_number(n_max, "n_max", 1, strict=True, high=math.inf)
    m = None if m in (None, math.inf) else m
    if per_token not in (True, False):
        raise BadValue("per_token", f"per_token must be True or False, got {per_token!r}")
    if per_token and m is None:
        raise BadValue("per_token", "per_token=True prices the prompt's tokens: it needs a "
                                    "finite m")
    return m


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


def _integer_needed(error, frontier: np.ndarray, ks, eps: float) -> np.ndarray:
    """Smallest integer n >= n*(k) whose error after k passes is <= eps (population: the
    error falls with n)."""
    out = np.full(len(ks), math.inf)
    for j, (n, k) in enumerate(zip(frontier, ks)):
        # floor(n) too: a bisection's n* can sit a hair above an integer that reaches eps
        for cand in range(max(1, math.floor(n)), math.ceil(n) + 2) if math.isfinite(n) else ():
            if error(cand, int(k)) <= eps * (1 + 1e-9):
                out[j] = cand
                break
    return out


def _finite_search(cov, m: int, eps: float, k_max: int, n_max: float):
    """Exact integer search at finite m: per k, the smallest integer n <= n_max with error
    <= eps, the real crossing n*(k) below it, and the floor (the least error over integers).

    At fixed k the Marchenko–Pastur error is ``∫(1 − cλ)^{2k}dF``, convex in the step
    ``c = n/(n+d+1)`` (k = 1: the exact one-step error, a quadratic in c), so unimodal in n:
    a ternary search finds its integer minimum, a bisection on the falling side the first n.
    """
    top, cache = int(n_max), {}

    def err(n, k):
        if n not in cache:
            cache[n] = finite_prompt_error(pseudo_newton_v(cov, float(n)), cov, m,
                                           k_max)[1:].numpy()
        return cache[n][k - 1]

    needed, frontier, floor = (np.full(k_max, math.inf) for _ in range(3))
    for k in range(1, k_max + 1):
        lo, hi = 1, top
        while hi - lo > 2:
            a, b = lo + (hi - lo) // 3, hi - (hi - lo) // 3
            lo, hi = (lo, b) if err(a, k) <= err(b, k) else (a, hi)
        best = min(range(lo, hi + 1), key=lambda n: err(n, k))
        floor[k - 1] = err(best, k)
        if floor[k - 1] > eps * (1 + 1e-9):
            continue
        lo, hi = 0, best                        # err(hi) <= eps; lo = 0 stands for "above"
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if err(mid, k) <= eps * (1 + 1e-9) else (mid, hi)
        needed[k - 1] = frontier[k - 1] = hi
        if hi > 1:                              # the real crossing in (hi − 1, hi]
            a, b = float(hi - 1), float(hi)
            for _ in range(30):
                mid = (a + b) / 2
                e = finite_prompt_error(pseudo_newton_v(cov, mid), cov, m, k)[k].item()
                a, b = (mid, b) if e > eps else (a, mid)
            frontier[k - 1] = b
    return needed, frontier, floor


def plan(n_dims: int, spectrum, m: int | None, eps: float, cost_train: float,
         cost_pass: float, n_steps: int = 20, n_max: float = 1e4, *, per_token: bool = False,
         n_prompts: int = 20_000, k_eval: int = 200, seed: int = 0) -> Plan:
    """The frontier n*(k), the cheapest (n, k), and what it promises for mean, median, tail.

    Args:
        n_dims: dimension d. spectrum: the training covariance Λ, (d, d) positive definite, or its
            hardness ``Hard = tr Λ / λ_min >= d`` (then the scaling law plans, m → ∞ only).
        m: test prompt length; ``None`` (or ``inf``) for infinitely long prompts. Finite m
            needs isotropic training (Λ = σI, or Hard = d): ``finite_prompt_error``'s law.
        eps: target error per coordinate, in (0, 1). cost_train, cost_pass: > 0, see
            ``COST_MODEL``; per_token: price a pass by the tokens it reads (finite m).
        n_steps: plans k = 1..n_steps. n_max: largest n considered.
        n_prompts, k_eval, seed: finite m only, the Monte Carlo of the exact per-prompt
            errors at the plan's n for k = 0..k_eval (``tail_stats``; 0 prompts: skip it).
    Test features come from the training distribution (Σ = Λ). Bad arguments raise a
    one-line :class:`BadValue` naming the argument.
    """
    m = _check(n_dims, m, eps, cost_train, cost_pass, n_steps, n_max, per_token)
    check_int(n_prompts, "n_prompts", low=0)
    check_int(k_eval, "k_eval", low=n_steps)
    cov, hard = _spectrum(n_dims, spectrum)
    ks = np.arange(1, n_steps + 1)
    if m is None:
        model = "population, scaling law" if cov is None else "population, exact"
        frontier, floor = _population_frontier(cov, hard, eps, ks, n_max), np.zeros(n_steps)
        n_div = math.inf

        def error(n, k):
            return _population_error(cov, hard, n, k)
        needed = _integer_needed(error, frontier, ks, eps)
    else:
        if hard > n_dims * (1 + 1e-9):
            raise BadValue("m", f"finite m needs isotropic training (Hard = d = {n_dims}), got "
                                f"Hard = {hard:.4g}; pass m=None to plan for m → ∞")
        cov = torch.eye(n_dims, dtype=DTYPE) if cov is None else cov
        model, n_div = "finite m, Marchenko–Pastur", divergence_threshold(n_dims, m)
        needed, frontier, floor = _finite_search(cov, m, eps, n_steps, n_max)

        def error(n, k):
            return finite_prompt_error(pseudo_newton_v(cov, float(n)), cov, m, k)[k].item()
    result = Plan(eps, m, model, ks, frontier, needed, floor, n_div, needed <= n_div,
                  cost_train, cost_pass, None, None, None, None, "", per_token)
    result = _cheapest(result, error, n_max)
    if result.n is None:
        return result
    if m is None:
        return replace(result, tail=0.0, horizon=math.inf)
    return _tail_report(result, cov, n_prompts, k_eval, seed)


def _cheapest(result: Plan, error, n_max: float) -> Plan:
    """``result`` with its cheapest median-safe point filled in, or the reason there is none."""
    costs = np.where(result.median_safe, result.costs(), math.inf)
    if not np.isfinite(costs).any():
        floor = result.floor.min()
        why = (f"error floor {floor:.3g} > eps = {result.eps:g} for k <= {result.ks[-1]} "
               f"and n <= n_max = {n_max:g}" if floor > result.eps else
               f"every k that reaches eps needs n above the divergence threshold "
               f"{result.n_diverge:.1f}")
        return replace(result, reason=why)
    j = int(np.argmin(costs))
    n, k = int(result.n_needed[j]), int(result.ks[j])
    return replace(result, n=n, k=k, cost=float(costs[j]), error=error(n, k))


def _tail_report(result: Plan, cov, n_prompts: int, k_eval: int, seed: int) -> Plan:
    """The tail probability, and the Monte Carlo mean, median and horizon at (n, k)."""
    V = pseudo_newton_v(cov, float(result.n)).numpy()
    tail = divergence_probability(V, cov.numpy(), result.m)
    if n_prompts == 0:
        return replace(result, tail=tail)
    stats = tail_stats(V, cov.numpy(), result.m, k_eval, n_prompts, seed=seed)
    level = max(result.eps, float(stats.mean[result.k]))
    above = np.flatnonzero(stats.mean[result.k:] > level * (1 + 1e-12))
    horizon = result.k + int(above[0]) - 1 if above.size else k_eval
    return replace(result, tail=tail, stats=stats, horizon=horizon, k_eval=k_eval)
