"""Sweeps behind the "What the paper finds" chapters: context n against test-time passes k.

One trained LSA per training context ``n``; errors over the ``(n, k)`` grid as tidy frames
(``n, k, error``), the context the closed form needs for a target error, and per-prompt
errors for the heavy tails of overthinking. Errors are per coordinate, ``||ŵ_k − w||²/d``,
and ``k`` counts forward passes (``k = 1`` is direct prediction).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .evaluate import prompt_errors, summarize
from .lsa import LSA, LSAConfig
from .spectra import DTYPE, check_covariance
from .tasks import Prompts, RegressionTask
from .theory import population_error, pseudo_newton_v
from .train import TrainConfig, train


def learned_v(model: LSA) -> torch.Tensor:
    """The trained ``V31`` as a float64 CPU tensor (what the closed forms take)."""
    return model.V31.detach().to("cpu", DTYPE)


def train_lsas(cov: torch.Tensor, ns: Sequence[int], config: TrainConfig, model_seed: int = 0,
               device="auto") -> tuple[dict[int, LSA], pd.DataFrame]:
    """Train one LSA per training context ``n`` in ``ns`` on prompts with features ``N(0, cov)``.

    Every model starts from the same initialisation (``model_seed``) and sees batches drawn
    with ``config.seed``. Returns ``{n: model}`` (in eval mode) and the concatenated training
    histories with columns ``n, step, loss, lr, distance``, where ``distance`` is
    ``||V31 + Γ⁻¹||_F / ||Γ⁻¹||_F``, the relative gap to the closed-form optimum.
    """
    task = RegressionTask(cov)
    models, histories = {}, []
    for n in ns:
        target = pseudo_newton_v(cov, n)

        def distance(model, target=target):
            return {"distance": (torch.linalg.norm(learned_v(model) - target) / torch.linalg.norm(target)).item()}

        model = LSA(LSAConfig(n_dims=task.n_dims, seed=model_seed))
        history = train(model, task, n, config, monitor=distance, device=device)
        models[n] = model
        histories.append(history.assign(n=n))
    return models, pd.concat(histories, ignore_index=True)


def population_grid(vs: Mapping[int, torch.Tensor], cov_test: torch.Tensor, n_steps: int) -> pd.DataFrame:
    """Population error (test prompts of infinite length) of ``V`` per training context.

    ``vs`` maps ``n`` to a ``(d, d)`` value matrix (``pseudo_newton_v(cov, n)`` for the closed
    form, ``learned_v(model)`` for a trained model). Returns rows ``n, k, error`` for
    k = 1..n_steps, sorted by ``n`` then ``k``.
    """
    rows = [pd.DataFrame({"n": n, "k": np.arange(1, n_steps + 1),
                          "error": population_error(V, cov_test, n_steps)[1:].numpy()})
            for n, V in sorted(vs.items())]
    return pd.concat(rows, ignore_index=True)


def grid_matrix(frame: pd.DataFrame, value: str = "error") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ns, ks, M)`` with ``M[i, j]`` the ``value`` at ``n = ns[i]``, ``k = ks[j]`` (for heatmaps)."""
    table = frame.pivot(index="n", columns="k", values=value).sort_index().sort_index(axis=1)
    if table.isna().any().any():
        raise ValueError(f"frame does not fill the (n, k) grid: {int(table.isna().sum().sum())} cells missing")
    return table.index.to_numpy(), table.columns.to_numpy(), table.to_numpy(dtype=float)


def steps_to_reach(errors: Sequence[float], target: float) -> int | None:
    """The smallest ``k`` (1-based: ``errors[k - 1]`` is the error after k passes) with error <= target.

    Returns ``None`` when no k in range reaches the target.
    """
    hits = np.flatnonzero(np.asarray(errors, dtype=float) <= target)
    return int(hits[0]) + 1 if hits.size else None


def context_needed(cov: torch.Tensor, k: int, eps: float, cov_test: torch.Tensor | None = None,
                   n_max: float = 1e6, tol: float = 1e-9) -> float:
    """The (real) training context ``n`` at which the closed-form population error after ``k``
    passes equals ``eps``, found by bisection (the error falls as n grows when Σ = Λ).

    ``cov_test`` defaults to ``cov``. Compare with the scaling law's ``n_star(Hard, k, eps)``:
    equal for ``Λ = I``, larger (the law is pessimistic) otherwise.
    """
    cov = check_covariance(cov)
    cov_test = cov if cov_test is None else cov_test
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")

    def error(n: float) -> float:
        return population_error(pseudo_newton_v(cov, n), cov_test, k)[k].item()

    lo, hi = 1.0, float(n_max)
    if error(lo) <= eps:
        return lo
    if error(hi) > eps:
        raise ValueError(f"even n = {n_max:g} does not reach error {eps} with k = {k}")
    while hi - lo > tol * hi:
        mid = (lo * hi) ** 0.5 if hi / lo > 4 else (lo + hi) / 2  # geometric steps first
        lo, hi = (mid, hi) if error(mid) > eps else (lo, mid)
    return hi


def errors_by_n(predictors: Mapping[int, object], prompts: Prompts, n_steps: int,
                batch_size: int | None = None) -> dict[int, torch.Tensor]:
    """Per-prompt errors ``(B, n_steps)`` (k = 1..n_steps) of each predictor on the same prompts."""
    return {n: prompt_errors(p, prompts, n_steps, batch_size) for n, p in predictors.items()}


def summarize_by_n(errors: Mapping[int, torch.Tensor], name: str, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """``summarize`` for every n: rows ``predictor`` (``"{name}, n = {n}"``), ``n, k, mean,
    ci_low, ci_high, median``."""
    frames = [summarize(e, f"{name}, n = {n}", n_boot, seed).assign(n=n) for n, e in errors.items()]
    return pd.concat(frames, ignore_index=True)


def error_quantiles(errors: Mapping[int, torch.Tensor], k: int,
                    quantiles: Sequence[float] = (0.5, 0.9, 0.99, 0.999)) -> pd.DataFrame:
    """Quantiles (columns) and mean of the per-prompt error after ``k`` passes, one row per n."""
    rows = {}
    for n, e in errors.items():
        if not 1 <= k <= e.shape[1]:
            raise ValueError(f"k must lie in 1..{e.shape[1]}, got {k!r}")
        col = e[:, k - 1].double()
        rows[n] = {f"q{q:g}": torch.quantile(col, q).item() for q in quantiles} | {"mean": col.mean().item()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("n")


def prompt_mu_max(V: torch.Tensor, prompts: Prompts) -> torch.Tensor:
    """Per prompt, the largest eigenvalue of ``−V Ŝ_m`` (``Γ⁻¹Ŝ_m`` for the trained V): (B,).

    It is the finite-m counterpart of ``mu_spectrum``: a prompt whose value exceeds 2 has a
    direction that CoT expands, however small its population ``μ_max``.
    """
    X = prompts.validate().X.to("cpu", DTYPE)
    S = X.transpose(1, 2) @ X / X.shape[1]                     # (B, d, d)
    V = torch.as_tensor(V, dtype=DTYPE)
    # −VŜ = Γ⁻¹Ŝ is similar to a symmetric matrix: its eigenvalues are real.
    return torch.linalg.eigvals(-V @ S).real.max(dim=-1).values
