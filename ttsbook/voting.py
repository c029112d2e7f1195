"""Questions with known answers and the ways to pick one answer from N samples (numpy only).

The language-model chapter's task sets (additions drawn from a seed), the parsing of a reply,
and the selectors compared there: majority vote, a vote weighted by a verifier, best-of-N by a
score, and pass@N, the ceiling of every selector (it alone uses the true answer). Selection is
averaged over random n-subsets of each question's N samples, so every N uses the same samples.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .checks import BadValue, check_int


def additions(n_questions: int, digits: int, seed: int) -> pd.DataFrame:
    """``n_questions`` additions of two ``digits``-digit numbers (one digit: 0..9), drawn
    with replacement from a ``numpy`` generator seeded with ``seed``: columns a, b, truth."""
    check_int(n_questions, "n_questions")
    check_int(digits, "digits")
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits
    a, b = np.random.default_rng(seed).integers(low, high, (2, n_questions))
    return pd.DataFrame({"a": a, "b": b, "truth": a + b})


def parse(text: str) -> int:
    """The number a reply starts with (commas inside allowed), or -1 if there is none."""
    digits = ""
    for char in text.lstrip():
        if char.isdigit():
            digits += char
        elif char != "," or not digits:
            break
    return int(digits) if digits else -1


def units_check(questions: pd.DataFrame, answer: np.ndarray) -> np.ndarray:
    """A verifier that sees the question and a candidate, never the true answer: does the
    candidate end in the last digit of (a mod 10) + (b mod 10)? (B, N) bool."""
    units = ((questions.a.to_numpy() % 10 + questions.b.to_numpy() % 10) % 10)[:, None]
    return (answer >= 0) & (answer % 10 == units)


def _draws(answer: np.ndarray, n: int, n_draws: int, seed: int) -> np.ndarray:
    """Indices of ``n_draws`` random n-subsets of each question's N samples: (B, D, n)."""
    B, N = answer.shape
    check_int(n, "n")
    if n > N:
        raise BadValue("n", f"n must be <= the {N} samples per question, got {n}")
    keys = np.random.default_rng(seed).random((B, n_draws, N))
    return keys.argsort(-1)[..., :n]


def vote(answer, truth, n, weight=None, n_draws=64, seed=0) -> np.ndarray:
    """Accuracy of a (weighted) majority vote over ``n`` of each question's samples, averaged
    over ``n_draws`` random subsets, ties broken at random: (B,). ``answer`` (B, N), -1 where
    unparsed (such samples never get a vote); ``weight`` (B, N), default 1."""
    answer = np.asarray(answer)
    idx = _draws(answer, n, n_draws, seed)
    picked = np.take_along_axis(answer[:, None], idx, -1)             # (B, D, n)
    w = np.ones(answer.shape) if weight is None else np.asarray(weight, float)
    w = np.take_along_axis((w * (answer >= 0))[:, None], idx, -1)
    support = ((picked[..., :, None] == picked[..., None, :]) * w[..., None, :]).sum(-1)
    chosen = np.take_along_axis(picked, support.argmax(-1)[..., None], -1)[..., 0]
    return (chosen == np.asarray(truth)[:, None]).mean(1)


def best_of(answer, truth, n, score, n_draws=64, seed=0) -> np.ndarray:
    """Accuracy of best-of-``n``: the sample with the highest ``score`` (B, N), averaged over
    ``n_draws`` random subsets: (B,)."""
    answer = np.asarray(answer)
    idx = _draws(answer, n, n_draws, seed)
    s = np.take_along_axis(np.asarray(score, float)[:, None], idx, -1)
    chosen = np.take_along_axis(answer[:, None], idx, -1)
    chosen = np.take_along_axis(chosen, s.argmax(-1)[..., None], -1)[..., 0]
    return (chosen == np.asarray(truth)[:, None]).mean(1)


def pass_at(answer, truth, n) -> np.ndarray:
    """pass@n per question, the chance that ``n`` of its N samples hold the true answer (the
    unbiased estimator ``1 - C(N - c, n) / C(N, n)``, c of N correct): (B,)."""
    answer = np.asarray(answer)
    B, N = answer.shape
    check_int(n, "n")
    if n > N:
        raise BadValue("n", f"n must be <= the {N} samples per question, got {n}")
    c = (answer == np.asarray(truth)[:, None]).sum(1)
    miss = np.ones(B)
    for i in range(n):  # C(N - c, n) / C(N, n) as a product; zero once N - c < n
        miss *= np.clip(N - c - i, 0, None) / (N - i)
    return 1 - miss


def agreement(answer, truth) -> dict:
    """How alike a question's samples are: ``modal_share``, the mean share of the most common
    answer; ``accuracy``, of one sample; ``rho``, the share of the variance of correctness that
    lies between questions (0: correctness independent of the question; 1: a question's samples
    are all right or all wrong), its within-question part corrected for the finite N."""
    answer = np.asarray(answer)
    B, N = answer.shape
    p = (answer == np.asarray(truth)[:, None]).mean(1)
    modal = np.array([np.unique(row, return_counts=True)[1].max() / N for row in answer])
    within = (p * (1 - p)).mean() * N / (N - 1)          # E[p(1 - p)], unbiased
    between = max(p.var() - within / N, 0.0)
    total = p.mean() * (1 - p.mean())
    return {"modal_share": modal.mean(), "accuracy": p.mean(),
            "rho": between / total if total > 0 else float("nan")}
