"""The LSA trained on its own chain of thought (float64): the K-step objective, its optimum,
the fixed point of stop-gradient training, and the step it learns in a missing direction.

Training on the chain means supervising every pass of the self-fed iteration
``ŵ_j = ŵ_{j−1} + V Ŝ (ŵ_{j−1} − w)``, ``ŵ_0 = 0`` (``W13 = I``), with the K-step objective
``L_K(V) = (1/K) Σ_{j=1..K} E||ŵ_j − w||²/d = (1/K) Σ_j E||(I + VŜ)^j||_F²/d`` (w ~ N(0, I)
averaged exactly). Two trainings differ in the gradient they follow:

* through the feedback (back-propagation through the chain): minimisers of ``L_K``;
* stop-gradient on the fed-back ``ŵ`` (the GPT's :func:`ttsbook.train.cot_loss`): fixed
  points of ``Σ_j E[(I + VŜ) M_{j−1} M_{j−1}ᵀ Ŝ] = 0``, ``M_j = (I + VŜ)^j``.

K = 1 gives ``−Γ⁻¹`` for both. As n → ∞ (Ŝ = Λ) every K gives ``−Λ⁻¹`` (``L_K = 0``), so
whatever the chain changes is a finite-n effect. The expectation over training prompts Ŝ has no
closed form for K > 1 (Wishart moments of order 2K): the functions here take the training
moments Ŝ as an argument (``moments``, (N, d, d), drawn by the caller, e.g.
``RegressionTask(Λ).sample(n, N, seed).moments()[0]``: common random numbers) and are
deterministic given them. ``chain_optimum`` and ``chain_fixed_point`` search diagonal V (for a
diagonal Λ, flipping the sign of a coordinate leaves ``L_K`` unchanged).
``missing_direction_step`` is the exact leading order, as its training variance ε → 0, of the
step a direction absent from training gets.
"""
from __future__ import annotations

import torch

from ..checks import DTYPE, check_int, check_number
from .population import _check_square


def _diagonal_start(start: torch.Tensor, d: int) -> torch.Tensor:
    start = _check_square(start, d, "start")
    if (start - torch.diag(torch.diagonal(start))).abs().max().item() > 0:
        raise ValueError("start must be a diagonal V (e.g. pseudo_newton_v of a diagonal Λ)")
    return torch.diagonal(start)


def _moments(moments: torch.Tensor) -> torch.Tensor:
    moments = torch.as_tensor(moments, dtype=DTYPE)
    moments = moments[None] if moments.ndim == 2 else moments
    if moments.ndim != 3 or moments.shape[1] != moments.shape[2]:
        raise ValueError(f"moments must be (d, d) or (N, d, d), got {tuple(moments.shape)}")
    return moments


def chain_errors(V: torch.Tensor, moments: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Per prompt, ``||(I + VŜ)^k||_F²/d`` for k = 0..n_steps: (N, n_steps + 1).

    The error ``E_w||ŵ_k − w||²/d`` of k self-fed passes on a prompt with moments Ŝ
    (``moments``: (N, d, d), or one (d, d)), exact in w ~ N(0, I). Differentiable in V.
    """
    moments = _moments(moments)
    check_int(n_steps, "n_steps", low=0)
    d = moments.shape[-1]
    step = torch.eye(d, dtype=DTYPE) + _check_square(V, d) @ moments  # (N, d, d)
    power, out = torch.eye(d, dtype=DTYPE).expand_as(step), [moments.new_ones(len(step))]
    for _ in range(n_steps):
        power = step @ power
        out.append((power ** 2).sum((1, 2)) / d)
    return torch.stack(out, dim=1)


def chain_objective(V: torch.Tensor, moments: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``L_K(V)``, K = ``n_steps``: the mean of ``chain_errors`` over prompts and k = 1..K."""
    check_int(n_steps, "n_steps")
    return chain_errors(V, moments, n_steps)[:, 1:].mean()


def chain_optimum(moments: torch.Tensor, n_steps: int, start: torch.Tensor) -> torch.Tensor:
    """The diagonal V minimising ``L_K`` (K = ``n_steps``) over the training moments
    ``moments`` (N, d, d), by L-BFGS from the diagonal ``start`` (e.g. −Γ⁻¹).

    Returns the (d, d) diagonal V; for K = 1 it is ``−Γ⁻¹`` up to the sampling error of the
    moments.
    """
    moments = _moments(moments)
    p = (-_diagonal_start(start, moments.shape[-1])).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([p], lr=1, max_iter=500, tolerance_grad=1e-11,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = chain_objective(-torch.diag(p), moments, n_steps)
        loss.backward()
        return loss

    opt.step(closure)
    return -torch.diag(p.detach())


def _stop_gradient_terms(v: torch.Tensor, moments: torch.Tensor, n_steps: int):
    """``Σ_j diag E[M M ᵀŜ]`` and ``Σ_j diag E[Ŝ M Mᵀ Ŝ]``, M = (I + VŜ)^{j−1}, j = 1..K."""
    eye = torch.eye(len(v), dtype=DTYPE)
    step, power = eye + torch.diag(v) @ moments, eye.expand_as(moments)
    num = den = 0
    for _ in range(n_steps):
        mm = power @ power.transpose(1, 2)
        num = num + torch.diagonal(mm @ moments, dim1=1, dim2=2).mean(0)
        den = den + torch.diagonal(moments @ mm @ moments, dim1=1, dim2=2).mean(0)
        power = step @ power
    return num, den


def chain_fixed_point(moments: torch.Tensor, n_steps: int, start: torch.Tensor, *,
                      rate: float = 0.1, tol: float = 1e-9, max_iter: int = 5000) -> torch.Tensor:
    """The diagonal V where stop-gradient chain training stops: per coordinate i,
    ``Σ_j E[(e_j)_i (Ŝ e_{j−1})_i] = 0`` with the fed-back error ``e_{j−1}`` held fixed,
    E over the training moments ``moments`` (N, d, d) and w.

    Solved by the relaxed iteration ``v ← v + rate·(−num(v)/den(v) − v)`` from the diagonal
    ``start`` (the plain iteration, rate 1, can oscillate at K = 8); ``RuntimeError`` if the
    update is not below ``tol`` within ``max_iter`` iterations. Returns the (d, d) diagonal V.
    """
    moments = _moments(moments)
    check_int(n_steps, "n_steps")
    check_number(rate, "rate", 0, strict=True, high=1 + 1e-12)
    v = _diagonal_start(start, moments.shape[-1]).clone()
    for _ in range(max_iter):
        num, den = _stop_gradient_terms(v, moments, n_steps)
        change = -num / den - v
        v = v + rate * change
        if change.abs().max().item() < tol:
            return torch.diag(v)
    raise RuntimeError(f"stop-gradient fixed point not reached in {max_iter} iterations "
                       f"(last change {change.abs().max().item():.3g}); lower rate")


def missing_direction_step(V_s: torch.Tensor, moments_s: torch.Tensor, n: int, n_steps: int,
                           *, stop_gradient: bool = False) -> float:
    """Leading order (training variance ε → 0) of the step ``v`` chain training gives a
    direction missing from training, given the step ``V_s`` of the other directions and
    their moments Ŝ_s (``moments_s``: draws (N, d_s, d_s), or Λ_s for the population
    approximation). With ``A = I + V_s Ŝ_s``, ``B_j = Σ_{t<j} A^t``, ``t_b = tr A^b``:

    * minimiser of ``L_K``: ``v = −n Σ_j [j + (1/n) E(Σ_{r<j−1} (r+1) tr(A^{jᵀ}(A^{r+1} −
      A^r)) + Σ_{b=1}^{j−1} t_b − (j−1) t_0)] / Σ_j E tr(B_j B_jᵀ Ŝ_s)``;
    * stop-gradient: ``v = −n Σ_j [1 + (1/n) E(t_{j−1} − t_0)] /
      Σ_j E tr((A^{j−1} + B_{j−1}) A^{(j−1)ᵀ} Ŝ_s)``.

    K = 1 gives ``−n/tr Λ_s`` (the ε → 0 limit of −Γ⁻¹) for both.
    """
    moments_s = _moments(moments_s)
    check_int(n, "n")
    check_int(n_steps, "n_steps")
    d_s = moments_s.shape[-1]
    eye = torch.eye(d_s, dtype=DTYPE)
    A = eye + _check_square(V_s, d_s) @ moments_s
    powers = [eye.expand_as(A)]
    for _ in range(n_steps):
        powers.append(A @ powers[-1])

    def tr(M):
        return torch.diagonal(M, dim1=-2, dim2=-1).sum(-1).mean().item()

    num = den = 0.0
    for j in range(1, n_steps + 1):
        B = sum(powers[:j - 1], torch.zeros_like(A))                   # B_{j−1}
        if stop_gradient:
            num += 1 + tr(powers[j - 1] - eye) / n
            den += tr((powers[j - 1] + B) @ powers[j - 1].transpose(1, 2) @ moments_s)
            continue
        B = B + powers[j - 1]                                          # B_j
        cross = sum(((r + 1) * powers[j].transpose(1, 2) @ (powers[r + 1] - powers[r])
                     for r in range(j - 1)), torch.zeros_like(A))
        telescoped = sum(powers[1:j], torch.zeros_like(A)) - (j - 1) * eye
        num += j + tr(cross + telescoped) / n
        den += tr(B @ B.transpose(1, 2) @ moments_s) / n
    return -num / den * (n if stop_gradient else 1)


def missing_direction_limit(n: int, d_s: int, trace_s: float, n_steps: int, *,
                            stop_gradient: bool = False) -> float:
    """``missing_direction_step`` when the other directions are solved in one pass (A = 0):
    ``−(n/tr Λ_s)[(K+1)/2 − (d_s/n)(K−1)/2]`` for the minimiser of ``L_K`` and
    ``−(n/tr Λ_s)[1 + (K−1)(1 − d_s/n)]`` for stop-gradient training."""
    check_int(n, "n")
    check_int(d_s, "d_s")
    check_number(trace_s, "trace_s", 0, strict=True)
    K = check_int(n_steps, "n_steps")
    gain = 1 + (K - 1) * (1 - d_s / n) if stop_gradient else (K + 1) / 2 - d_s / n * (K - 1) / 2
    return -n / trace_s * gain
