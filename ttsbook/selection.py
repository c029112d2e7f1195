"""Choosing training tasks: four kinds of task, candidate mixtures, and their true error.

Our reading of the paper's "easy/hard x short/long" task kinds (the paper does not give
its spectra): a *skill* is a feature direction. A task exercises ``n_skills`` directions
strongly (eigenvalue 1 before normalising) and shows the others only with weight ``eps``;
"few"/"many" is the number of strong directions, "easy"/"hard" the size of ``eps``
(large ``eps`` = well-conditioned, small ``eps`` = large ``Hard(Λ) = tr Λ / λ_min``). Every
task is rescaled to ``tr Λ = d`` so all carry the same total signal. The task-selection QP
(``theory.task_selection``) is a proxy; ``compare_mixtures`` reports the true population
error of the trained LSA, ``best_mixture`` minimises it directly.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch

from .evaluate import evaluate
from .lsa import LSA, LSAConfig
from .predictors import PseudoNewton
from .spectra import DTYPE, hardness, missing_skills
from .tasks import MixtureTask, RegressionTask
from .theory import (mixture_optimum, mu_spectrum, population_error, pseudo_newton_v, scaling_law,
                     selection_objective)
from .train import TrainConfig, train

KINDS = ("easy-few", "easy-many", "hard-few", "hard-many")


def skill_task(d: int, n_skills: int, eps: float) -> torch.Tensor:
    """Diagonal ``(d, d)`` covariance: directions ``0..n_skills-1`` at 1, the rest at ``eps``, ``tr = d``."""
    if not isinstance(n_skills, int) or not 1 <= n_skills <= d:
        raise ValueError(f"n_skills must be an integer in [1, {d}], got {n_skills!r}")
    if not 0 < eps <= 1:
        raise ValueError(f"eps must lie in (0, 1], got {eps!r}")
    cov = missing_skills(d, list(range(n_skills, d)), eps)
    return cov * d / torch.trace(cov)


def task_kinds(d: int, few: int, many: int, eps_easy: float, eps_hard: float) -> dict[str, torch.Tensor]:
    """The four task kinds of ``KINDS`` as a name -> covariance dict (see the module docstring)."""
    if not few < many:
        raise ValueError(f"few must be < many, got few={few}, many={many}")
    if not eps_hard < eps_easy:
        raise ValueError(f"eps_hard must be < eps_easy, got {eps_hard} and {eps_easy}")
    return {"easy-few": skill_task(d, few, eps_easy), "easy-many": skill_task(d, many, eps_easy),
            "hard-few": skill_task(d, few, eps_hard), "hard-many": skill_task(d, many, eps_hard)}


def hardness_sweep(families: Mapping[str, Sequence[torch.Tensor]], n: int, n_steps: int,
                   m: int, n_prompts: int = 1000, seed: int = 0, device="cpu") -> pd.DataFrame:
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
                         "theory": population_error(pseudo_newton_v(cov, n), cov, n_steps)[-1].item(),
                         "bound": scaling_law(cov, n, n_steps)[-1].item(),
                         **{key: mc[key] for key in ("mean", "ci_low", "ci_high")}})
    return pd.DataFrame(rows)


def one_hot(n_tasks: int, index: int) -> torch.Tensor:
    """The mixture that trains on task ``index`` only."""
    return torch.eye(n_tasks, dtype=DTYPE)[index]


def mixture_error(covs: Sequence[torch.Tensor], probs, cov_target: torch.Tensor, n: float,
                  n_steps: int) -> torch.Tensor:
    """Population error (k = 0..n_steps) on ``cov_target`` of the LSA trained on the mixture."""
    return population_error(mixture_optimum(covs, probs, n), cov_target, n_steps)


def compare_mixtures(covs: Sequence[torch.Tensor], candidates: Mapping[str, object],
                     cov_target: torch.Tensor, n: float, n_steps: int) -> pd.DataFrame:
    """One row per candidate mixture: QP objective, mass on hard tasks, μ_max, true error.

    ``candidates`` maps a name to probabilities over ``covs``. ``hard_mass`` is the mass on
    tasks harder than the target; ``mu_max`` the largest eigenvalue of ``−V*Σ`` (CoT expands a
    direction with μ > 2); ``error`` the population error after ``n_steps`` passes.
    """
    hard_target = hardness(cov_target)
    harder = torch.tensor([hardness(c) > hard_target for c in covs])
    rows = []
    for name, probs in candidates.items():
        probs = torch.as_tensor(probs, dtype=DTYPE)
        rows.append({"mixture": name, "objective": selection_objective(covs, cov_target, probs),
                     "hard_mass": probs[harder].sum().item(),
                     "mu_max": mu_spectrum(mixture_optimum(covs, probs, n), cov_target).max().item(),
                     "error": mixture_error(covs, probs, cov_target, n, n_steps)[-1].item()})
    return pd.DataFrame(rows)


def best_mixture(covs: Sequence[torch.Tensor], cov_target: torch.Tensor, n: float, n_steps: int,
                 iters: int = 500, lr: float = 0.05) -> torch.Tensor:
    """Mixture minimising the *true* population error at ``n_steps`` (not the QP proxy).

    The error is smooth but not convex in π: Adam on softmax logits from the uniform mixture,
    deterministic (no randomness), float64. Returns probabilities over ``covs``.
    """
    logits = torch.zeros(len(covs), dtype=DTYPE, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    for _ in range(iters):
        loss = mixture_error(covs, torch.softmax(logits, 0), cov_target, n, n_steps)[-1].log()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.softmax(logits.detach(), 0)


def train_on_mixture(covs: Sequence[torch.Tensor], probs, n: int, config: TrainConfig,
                     model_seed: int = 0, device="auto") -> LSA:
    """A fresh LSA trained by direct prediction on prompts of ``n`` examples from the mixture."""
    model = LSA(LSAConfig(n_dims=covs[0].shape[0], seed=model_seed))
    train(model, MixtureTask(covs, probs), n, config, device=device)
    return model
