"""Parallel test-time compute: N chains, their aggregation, compute-optimal allocation at a
fixed budget of forward passes, and budget forcing around a stopping rule (such as
``stopping.residual_stop``).

Sequential compute is k passes of one chain ``ŵ ← ŵ + V(Ŝŵ − b)``; parallel compute is N
chains run side by side. N identical chains agree, so a chain needs a stated **source of
diversity**: which examples it reads (``data``: ``"all"``, a random ``"subset"`` of ``subset``
examples, or a ``"bootstrap"`` resample of the m examples) and ``noise_std``, the standard
deviation of Gaussian noise added to every coordinate after every pass (the toy's stand-in for
sampling at a temperature > 0). Chains are independent given the prompt, so for *any* source
the error of averaging N chains is exactly ``err_∞ + (err_1 − err_∞)/N`` (``averaging_law``);
for noise injection on all examples both constants have a closed form (``averaging_error``).

The verifier sees only the prompt: a chain's residual ``||y − Xŵ||²/m`` on all m examples.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .checks import DTYPE, BadValue, check_choice, check_int, check_number
from .predictors import pseudo_newton_chain
from .tasks import Prompts
from .theory import population_error

DATA = ("all", "subset", "bootstrap")
AGGREGATES = ("mean", "best")


def _weights(prompts: Prompts, n_chains: int, data: str, subset: int | None,
             gen: torch.Generator) -> torch.Tensor:
    """Each chain's weight on each example: (B, N, m), rows sum to 1."""
    B, m = len(prompts), prompts.n_points
    if data == "all":
        return torch.full((B, 1, m), 1 / m, dtype=DTYPE)
    if data == "bootstrap":
        draws = torch.randint(m, (B, n_chains, m), generator=gen)
        counts = torch.zeros(B, n_chains, m, dtype=DTYPE)
        return counts.scatter_add_(2, draws, torch.ones_like(counts)) / m
    s = check_int(m // 2 if subset is None else subset, "subset")
    if s > m:
        raise BadValue("subset", f"subset must be <= m = {m} examples, got {s}")
    order = torch.rand(B, n_chains, m, generator=gen).argsort(-1)
    return (order < s).to(DTYPE) / s  # a uniformly random s-subset per chain


def run_chains(V: torch.Tensor, prompts: Prompts, n_chains: int, n_steps: int, *,
               data: str = "all", noise_std: float = 0.0, subset: int | None = None,
               seed: int = 0) -> torch.Tensor:
    """N chains of k pseudo-Newton passes from ``ŵ_0 = 0``: iterates (B, N, k, d), float64.

    Chain c reads its weighted moments ``Ŝ_c = Σ_i a_ci x_i x_iᵀ``, ``b_c = Σ_i a_ci y_i x_i``
    (``a_ci = 1/m`` for ``data="all"``) and adds ``noise_std · ξ`` (ξ ~ N(0, I)) after
    each pass. Randomness is a pure function of ``seed``.
    """
    check_int(n_chains, "n_chains")
    check_int(n_steps, "n_steps")
    check_choice(data, "data", DATA)
    check_number(noise_std, "noise_std", 0)
    prompts = prompts.validate().to("cpu", DTYPE)
    d = prompts.n_dims
    V = torch.as_tensor(V, dtype=DTYPE)
    if tuple(V.shape) != (d, d):
        raise BadValue("V", f"V must have shape {(d, d)} to match the prompts, "
                            f"got {tuple(V.shape)}")
    gen = torch.Generator().manual_seed(seed)
    a = _weights(prompts, n_chains, data, subset, gen)          # (B, N or 1, m)
    S, b = prompts.moments(a)                                   # (B, N or 1, d, d), (.., d)
    b = b.expand(len(prompts), n_chains, d)
    return pseudo_newton_chain(V, S, b, n_steps, noise_std=noise_std, generator=gen)


def aggregate(prompts: Prompts, w_hat: torch.Tensor, how: str) -> torch.Tensor:
    """Combine N chains (B, N, k, d) into one answer per pass (B, k, d).

    ``"mean"``: their average (the regression analogue of majority vote).
    ``"best"``: best-of-N, the chain with the smallest residual on the prompt.
    """
    check_choice(how, "how", AGGREGATES)
    if w_hat.ndim != 4 or w_hat.shape[0] != len(prompts):
        raise BadValue("w_hat", f"w_hat must have shape (B={len(prompts)}, N, k, d), "
                                f"got {tuple(w_hat.shape)}")
    if how == "mean":
        return w_hat.mean(1)
    pick = prompts.residuals(w_hat).argmin(1)                   # (B, k)
    idx = pick[:, None, :, None].expand(-1, 1, -1, w_hat.shape[-1])
    return w_hat.gather(1, idx)[:, 0]


def averaging_law(err_one, err_inf, n_chains):
    """``err_∞ + (err_1 − err_∞)/N``: the exact error of averaging N chains that are
    independent and identically distributed given the prompt (any source of diversity).

    ``E||ē − 0||²`` splits into the squared mean of one chain's error (``err_∞``, what
    infinitely many chains converge to) and its variance, which averaging divides by N.
    """
    n = np.asarray(n_chains, dtype=float)
    if (n < 1).any():
        raise BadValue("n_chains", f"n_chains must be >= 1, got {n.tolist()}")
    n = float(n) if n.ndim == 0 else n
    return err_inf + (err_one - err_inf) / n


def averaging_error(V: torch.Tensor, test_cov: torch.Tensor, n_chains: int, n_steps: int,
                    noise_std: float) -> torch.Tensor:
    """Exact error of averaging N noise-injected chains on infinitely long test prompts.

    With ``A = I + VΣ`` a chain's error is ``e_k = A^k e_0 + σ Σ_{j<k} A^j ξ_{k−1−j}``, so
    ``E||ē_k||²/d = f(k) + (σ²/N) Σ_{j=0}^{k−1} f(j)``, ``f(j) = ||A^j||_F²/d`` the
    noiseless population error. Returns k = 0..n_steps, shape (n_steps + 1,).
    """
    check_int(n_chains, "n_chains")
    check_number(noise_std, "noise_std", 0)
    f = population_error(V, test_cov, n_steps)
    noise = torch.cat([f.new_zeros(1), torch.cumsum(f, 0)[:-1]])
    return f + noise_std ** 2 / n_chains * noise


def averaging_error_given(V: torch.Tensor, prompts: Prompts, n_chains: int, n_steps: int,
                          noise_std: float) -> torch.Tensor:
    """The same exact law on each finite prompt, ``A = I + VŜ_m``: (B, n_steps + 1).

    ``E[||ē_k||²/d | prompt] = ||A^k w||²/d + (σ²/N) Σ_{j<k} ||A^j||_F²/d``.
    """
    check_int(n_chains, "n_chains")
    check_int(n_steps, "n_steps", low=0)
    check_number(noise_std, "noise_std", 0)
    prompts = prompts.validate().to("cpu", DTYPE)
    w, d = prompts.w, prompts.n_dims
    A = torch.eye(d, dtype=DTYPE) + torch.as_tensor(V, dtype=DTYPE) @ prompts.moments()[0]
    power, bias, spread = torch.eye(d, dtype=DTYPE).expand_as(A), [], []
    for _ in range(n_steps + 1):
        bias.append((torch.einsum("bij,bj->bi", power, w) ** 2).mean(-1))
        spread.append((power ** 2).sum((1, 2)) / d)
        power = A @ power
    spread = torch.stack(spread, 1)
    noise = torch.cat([spread.new_zeros(len(prompts), 1), spread.cumsum(1)[:, :-1]], 1)
    return torch.stack(bias, 1) + noise_std ** 2 / n_chains * noise


def allocations(budget: int, ks: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The ``(N, k)`` pairs a budget of C forward passes allows: ``N = C // k`` chains of
    k passes for each k of ``ks`` (default: the divisors of C, so ``N·k = C`` exactly)."""
    budget = check_int(budget, "budget")
    ks = [k for k in range(1, budget + 1) if budget % k == 0] if ks is None else list(ks)
    if not ks:
        raise BadValue("ks", "ks must hold at least one number of passes")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= budget:
            raise BadValue("ks", f"every k must be an integer in [1, budget = {budget}], "
                                 f"got {k!r}")
    return [(budget // int(k), int(k)) for k in ks]


def allocate(V: torch.Tensor, prompts: Prompts, budget: int, ks: Sequence[int] | None = None,
             *, hows: Sequence[str] = AGGREGATES, **diversity) -> pd.DataFrame:
    """Error of every ``(N, k)`` with ``N·k <= budget`` (see ``allocations``), every
    aggregation: a tidy frame ``N, k, passes, how, mean, median`` (mean and median of the
    per-prompt error ``||ŵ − w||²/d``). All pairs see the same prompts; ``diversity`` is
    passed to ``run_chains`` (``data``, ``noise_std``, ``subset``, ``seed``).
    Pick the best row with ``best_allocation``.
    """
    for how in hows:
        check_choice(how, "hows", AGGREGATES)
    rows = []
    for n_chains, k in allocations(budget, ks):
        w_hat = run_chains(V, prompts, n_chains, k, **diversity)[:, :, -1:]
        for how in hows:
            err = prompts.errors(aggregate(prompts, w_hat, how)[:, 0]).numpy()
            rows.append({"N": n_chains, "k": k, "passes": n_chains * k, "how": how,
                         "mean": err.mean(), "median": float(np.median(err))})
    return pd.DataFrame(rows)


def best_allocation(frame: pd.DataFrame, by: str = "mean") -> pd.DataFrame:
    """The row of smallest ``by`` (``"mean"`` or ``"median"``) for each aggregation."""
    check_choice(by, "by", ("mean", "median"))
    return frame.loc[frame.groupby("how", sort=False)[by].idxmin()].reset_index(drop=True)


def force(k_stop: torch.Tensor, extra: int = 0, n_steps: int | None = None) -> torch.Tensor:
    """Budget forcing: ``k_stop + extra`` passes, clipped to 1..n_steps. ``extra > 0`` is
    s1's "Wait" (think on after the rule says stop), ``extra < 0`` cuts thinking short."""
    if isinstance(extra, bool) or not isinstance(extra, (int, np.integer)):
        raise BadValue("extra", f"extra must be an integer, got {extra!r}")
    k = torch.as_tensor(k_stop)
    if k.numel() and k.min() < 1:
        raise BadValue("k_stop", f"k_stop must be >= 1, got {k.min().item()}")
    high = None if n_steps is None else check_int(n_steps, "n_steps")
    return (k + extra).clamp(min=1, max=high)


def forcing_errors(prompts: Prompts, w_hat: torch.Tensor, k_stop: torch.Tensor,
                   extras: Sequence[int]) -> pd.DataFrame:
    """Error when forcing ``k_stop + extra`` passes, for each ``extra``: a frame
    ``extra, mean_k, mean, median`` over prompts. ``w_hat``: iterates (B, K, d)."""
    err = prompts.errors(w_hat)                                 # (B, K)
    rows = []
    for extra in extras:
        k = force(k_stop, extra, w_hat.shape[1]).long()
        e = err.gather(1, (k - 1)[:, None])[:, 0].numpy()
        rows.append({"extra": int(extra), "mean_k": k.double().mean().item(),
                     "mean": e.mean(), "median": float(np.median(e))})
    return pd.DataFrame(rows)
