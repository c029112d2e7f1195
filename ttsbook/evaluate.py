"""Score any predictor on the same prompts: error vs k as a tidy DataFrame.

Error per prompt is ``||ŵ_k − w||² / d``. Summaries give the mean with a percentile
bootstrap confidence interval and the median, because CoT errors can be heavy-tailed.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch

from .checks import BadValue, check_steps
from .tasks import Prompts, RegressionTask
from .utils import resolve_device


@torch.no_grad()
def prompt_errors(predictor, prompts: Prompts, n_steps: int,
                  batch_size: int | None = None) -> torch.Tensor:
    """Per-prompt errors ``||ŵ_k − w||²/d`` for k = 1..n_steps: (B, n_steps) float64, CPU."""
    check_steps(n_steps)
    prompts.validate()
    size = batch_size or len(prompts)
    chunks = []
    for start in range(0, len(prompts), size):
        part = prompts[start:start + size]
        chunks.append(part.errors(predictor.predict(part, n_steps).double().cpu()))
    return torch.cat(chunks)


def bootstrap_mean_ci(errors: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the mean of each column of ``errors`` (N, K).

    Resampling is done once for all columns: ``counts`` (n_boot, N) holds how often each
    prompt is drawn, so every resampled mean is one row of ``counts @ errors / N``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    N = errors.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, N, size=(n_boot, N)) + N * np.arange(n_boot)[:, None]
    counts = np.bincount(idx.ravel(), minlength=n_boot * N).reshape(n_boot, N)
    means = counts @ errors / N  # (n_boot, K)
    alpha = (1 - level) / 2
    return np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)


def summarize(errors: torch.Tensor, name: str, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Tidy rows ``predictor, k, mean, ci_low, ci_high, median`` from (N, K) errors."""
    err = errors.double().cpu().numpy()
    low, high = bootstrap_mean_ci(err, n_boot=n_boot, seed=seed)
    return pd.DataFrame({
        "predictor": name, "k": np.arange(1, err.shape[1] + 1), "mean": err.mean(0),
        "ci_low": low, "ci_high": high, "median": np.median(err, 0),
    })


def evaluate(predictors: Mapping[object, object], task: RegressionTask, m: int,
             n_steps: int, n_prompts: int = 10_000, seed: int = 0,
             batch_size: int | None = None, device: str | torch.device = "auto",
             n_boot: int = 1000, key: str = "predictor") -> pd.DataFrame:
    """Error vs k = 1..n_steps for every predictor, all scored on the same test prompts.

    Args:
        predictors: key -> object with ``predict(prompts, n_steps) -> (B, n_steps, d)``.
        task: draws the test prompts (``split="eval"``, so never a training batch).
        n_points: examples per test prompt (m).
        key: the column that holds the mapping's keys, with their own type: with
            ``key="n"`` and ``{10: model, 30: model}`` the frame gets an integer column
            ``n`` (look rows up with ``frame.n == 10``) and the label ``"n = 10"`` in
            ``predictor``, which the plots use.

    Returns:
        Rows ``predictor, k, mean, ci_low, ci_high, median, m`` (and ``key``, if given).
    """
    if not predictors:
        raise BadValue("predictors", "predictors must name at least one predictor")
    if not isinstance(key, str) or not key.isidentifier():
        raise BadValue("key", f"key must be a column name such as 'n', got {key!r}")
    prompts = task.sample(m, n_prompts, seed=seed, split="eval",
                          device=resolve_device(device), dtype=torch.float64)
    frames = []
    for name, p in predictors.items():
        label = name if key == "predictor" else f"{key} = {name}"
        frame = summarize(prompt_errors(p, prompts, n_steps, batch_size), str(label),
                          n_boot, seed)
        if key != "predictor":
            frame.insert(0, key, name)
        frames.append(frame.assign(m=m))
    return pd.concat(frames, ignore_index=True)
