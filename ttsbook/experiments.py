"""The LSA experiments of chapters 5–7 and 10: one LSA per training context, errors over the
(n, k) grid, the hardness sweep, training mixtures compared by their true error, the share of
isotropic prompts that diverge (Monte Carlo).

Results are tidy frames with typed columns: ``n`` (training context, int), ``k`` (passes,
int; ``k = 1`` is direct prediction), ``m`` (test examples), ``error`` or ``mean, ci_low,
ci_high, median``. Errors are per coordinate, ``||ŵ_k − w||²/d``. A chapter selects rows by
these columns and builds its display labels from them; it never parses one.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .checks import DTYPE, check_int
from .evaluate import evaluate, prompt_errors, summarize
from .lsa import LSA, LSAConfig
from .predictors import PseudoNewton
from .spectra import hardness, isotropic
from .tasks import MixtureTask, Prompts, RegressionTask
from .theory import (mixture_error, mixture_optimum, mu_spectrum, noisy_pseudo_newton_v,
                     population_error, pseudo_newton_v, scaling_law, selection_objective)
from .train import TrainConfig, train


def learned_v(model: LSA) -> torch.Tensor:
    """The trained ``V31`` as a float64 CPU tensor (what the closed forms take)."""
    return model.V31.detach().to("cpu", DTYPE)


def train_lsas(train_cov: torch.Tensor, ns: Sequence[int], config: TrainConfig,
               model_seed: int = 0, device="auto",
               noise_std: float = 0.0) -> tuple[dict[int, LSA], pd.DataFrame]:
    """Train one LSA per training context ``n`` in ``ns`` on prompts with features
    ``N(0, train_cov)`` and labels with noise of std ``noise_std`` (default noiseless).

    Every model starts from the same initialisation (``model_seed``) and sees batches drawn
    with ``config.seed``. Returns ``{n: model}`` (in eval mode) and the concatenated training
    histories with columns ``n, step, loss, lr, distance``, where ``distance`` is
    ``||V31 + Γ_σ⁻¹||_F / ||Γ_σ⁻¹||_F``, the relative gap to the closed-form optimum
    (``Γ_σ = Γ + σ²I/n``, just Γ without noise).
    """
    task = RegressionTask(train_cov, noise_std)
    models, histories = {}, []
    for n in ns:
        target = noisy_pseudo_newton_v(train_cov, n, noise_std)

        def distance(model, target=target):
            return {"distance": (torch.linalg.norm(learned_v(model) - target)
                                 / torch.linalg.norm(target)).item()}

        model = LSA(LSAConfig(n_dims=task.n_dims, seed=model_seed))
        history = train(model, task, n, config, monitor=distance, device=device)
        models[n] = model
        histories.append(history.assign(n=n))
    return models, pd.concat(histories, ignore_index=True)


def population_grid(vs: Mapping[int, torch.Tensor], test_cov: torch.Tensor,
                    n_steps: int) -> pd.DataFrame:
    """Population error (test prompts of infinite length) of ``V`` per training context.

    ``vs`` maps ``n`` to a ``(d, d)`` value matrix (``pseudo_newton_v(cov, n)`` for the closed
    form, ``learned_v(model)`` for a trained model). Returns rows ``n, k, error`` for
    k = 1..n_steps, sorted by ``n`` then ``k``.
    """
    rows = [pd.DataFrame({"n": n, "k": np.arange(1, n_steps + 1),
                          "error": population_error(V, test_cov, n_steps)[1:].numpy()})
            for n, V in sorted(vs.items())]
    return pd.concat(rows, ignore_index=True)


def grid_matrix(frame: pd.DataFrame,
                value: str = "error") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ns, ks, M)`` with ``M[i, j]`` the ``value`` at ``n = ns[i]``, ``k = ks[j]`` (for
    heatmaps)."""
    table = frame.pivot(index="n", columns="k", values=value).sort_index().sort_index(axis=1)
    if table.isna().any().any():
        raise ValueError("frame does not fill the (n, k) grid: "
                         f"{int(table.isna().sum().sum())} cells missing")
    return table.index.to_numpy(), table.columns.to_numpy(), table.to_numpy(dtype=float)


def steps_to_reach(errors: Sequence[float], target: float,
                   ks: Sequence[int] | None = None) -> int | None:
    """The first k whose error is <= ``target`` (the book's one "first k reaching ε").

    ``errors[j]`` is the error after ``ks[j]`` passes; ``ks`` defaults to 1, 2, … (so
    ``errors[k - 1]`` is the error after k passes; pass ``range(len(errors))`` for an
    array that starts at k = 0). Returns ``None`` when no k in range reaches the target.
    """
    errors = np.asarray(errors, dtype=float)
    ks = np.arange(1, len(errors) + 1) if ks is None else np.asarray(ks)
    if ks.shape != errors.shape:
        raise ValueError(f"ks must match errors, got {ks.shape} and {errors.shape}")
    hits = np.flatnonzero(errors <= target)
    return int(ks[hits[0]]) if hits.size else None


def isotropic_top_eigenvalues(n_dims: int, m: int, n_prompts: int = 2000,
                              seed: int = 0) -> torch.Tensor:
    """``λ_max(Ŝ_m)`` of ``n_prompts`` isotropic test prompts (Σ = I): (n_prompts,) float64.

    Prompts: ``RegressionTask(I_d).sample(m, ·, seed=seed, step=j, split="eval")`` in chunks
    j = 0, 1, … of at most 1000 prompts (``eigvalsh`` in float64).
    """
    check_int(m, "m")
    check_int(n_prompts, "n_prompts")
    task, top = RegressionTask(isotropic(n_dims)), []
    for step, start in enumerate(range(0, n_prompts, 1000)):
        X = task.sample(m, min(1000, n_prompts - start), seed=seed, step=step, split="eval",
                        dtype=DTYPE).X
        top.append(torch.linalg.eigvalsh(X.transpose(1, 2) @ X / m)[:, -1])
    return torch.cat(top)


def divergent_fraction(n_dims: int, n: float, m: int, n_prompts: int = 2000,
                       seed: int = 0) -> float:
    """Monte Carlo fraction of isotropic test prompts on which CoT diverges (Λ = Σ = I).

    A prompt diverges when the top eigenvalue of ``Γ⁻¹Ŝ_m = n/(n+d+1)·Ŝ_m`` exceeds 2; the
    prompts are those of :func:`isotropic_top_eigenvalues`. The closed-form edge of this
    fraction is ``theory.divergence_threshold``.
    """
    c = -pseudo_newton_v(isotropic(n_dims), n)[0, 0].item()
    return (c * isotropic_top_eigenvalues(n_dims, m, n_prompts, seed) > 2).double().mean().item()


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
        rows[n] = ({f"q{q:g}": torch.quantile(col, q).item() for q in quantiles}
                   | {"mean": col.mean().item()})
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("n")


def hardness_sweep(families: Mapping[str, Sequence[torch.Tensor]], n: int, n_steps: int,
                   m: int, n_prompts: int = 1000, seed: int = 0, device="auto") -> pd.DataFrame:
    """Error after ``n_steps`` passes vs ``Hard(Λ)`` when training and test share Λ (Σ = Λ).

    ``families`` maps a family name to covariances. One row per covariance: ``family, hard,
    theory`` (population error of the trained LSA, m → ∞), ``bound`` (the scaling law
    ``(1 + n/(1 + Hard))^(-2k)``) and the Monte Carlo ``mean, ci_low, ci_high`` of the
    closed-form trained LSA (``PseudoNewton.trained``) on ``n_prompts`` test prompts of ``m``
    examples.
    """
    rows = []
    for family, covs in families.items():
        for cov in covs:
            mc = evaluate({"lsa": PseudoNewton.trained(cov, n)}, RegressionTask(cov), m, n_steps,
                          n_prompts=n_prompts, seed=seed, device=device).iloc[-1]
            rows.append({"family": family, "hard": hardness(cov),
                         "theory": population_error(pseudo_newton_v(cov, n), cov,
                                                    n_steps)[-1].item(),
                         "bound": scaling_law(cov, n, n_steps)[-1].item(),
                         **{key: mc[key] for key in ("mean", "ci_low", "ci_high")}})
    return pd.DataFrame(rows)


def compare_mixtures(covs: Sequence[torch.Tensor], candidates: Mapping[str, object],
                     test_cov: torch.Tensor, n: float, n_steps: int) -> pd.DataFrame:
    """One row per candidate mixture: QP objective, mass on hard tasks, μ_max, true error.

    ``candidates`` maps a name to probabilities over ``covs``. ``hard_mass`` is the mass on
    tasks harder than the target; ``mu_max`` the largest eigenvalue of ``−V*Σ`` (CoT expands a
    direction with μ > 2); ``error`` the population error after ``n_steps`` passes.
    """
    hard_target = hardness(test_cov)
    harder = torch.tensor([hardness(c) > hard_target for c in covs])
    rows = []
    for name, probs in candidates.items():
        probs = torch.as_tensor(probs, dtype=DTYPE)
        rows.append({"mixture": name, "objective": selection_objective(covs, test_cov, probs),
                     "hard_mass": probs[harder].sum().item(),
                     "mu_max": mu_spectrum(mixture_optimum(covs, probs, n),
                                           test_cov).max().item(),
                     "error": mixture_error(covs, probs, test_cov, n, n_steps)[-1].item()})
    return pd.DataFrame(rows)


def train_on_mixture(covs: Sequence[torch.Tensor], probs, n: int, config: TrainConfig,
                     model_seed: int = 0, device="auto") -> LSA:
    """A fresh LSA trained by direct prediction on prompts of ``n`` examples from the mixture."""
    model = LSA(LSAConfig(n_dims=covs[0].shape[0], seed=model_seed))
    train(model, MixtureTask(covs, probs), n, config, device=device)
    return model
