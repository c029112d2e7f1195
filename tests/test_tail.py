"""The finite prompt's tail: the Tracy–Widom law against its published values, the divergence
probability against Monte Carlo, the exact per-prompt errors against iterating the chain, and
the mean-optimal k and the horizon against an independent Monte Carlo. Configurations the
chapters do not use."""
import numpy as np
import pytest
import torch

import ttsbook as tb
from ttsbook.checks import BadValue
from ttsbook.theory import (divergence_probability, isotropic_paths, prompt_spectra,
                            sample_moments, spectral_errors, tail_stats)
from ttsbook.theory.tracy_widom import tw1_cdf, tw1_sf, wishart_edge


def test_tracy_widom_matches_its_published_values():
    grid = np.linspace(-6, 6, 120_001)
    cdf = tw1_cdf(grid)
    for p, q in ((0.01, -3.8954), (0.5, -1.2682), (0.9, 0.4501), (0.95, 0.9793),
                 (0.99, 2.0234)):
        assert grid[np.searchsorted(cdf, p)] == pytest.approx(q, abs=2e-3)
    density = np.gradient(cdf, grid)
    assert (grid * density).sum() * (grid[1] - grid[0]) == pytest.approx(-1.2065, abs=1e-3)
    assert np.all(np.diff(cdf) >= 0) and tw1_sf(20.0) < 1e-25 < tw1_sf(7.0) < 1e-6
    assert tw1_sf(8.0 + 1e-9) == pytest.approx(tw1_sf(8.0 - 1e-9), rel=1e-4)  # the seam


def test_wishart_edge_is_johnstone_for_the_identity():
    d, m = 7, 40
    m1, d1 = m - 0.5, d - 0.5
    mu, sigma = wishart_edge(np.ones(d), m)
    assert mu == pytest.approx((m1 ** 0.5 + d1 ** 0.5) ** 2 / m, rel=1e-10)
    assert sigma == pytest.approx((m1 ** 0.5 + d1 ** 0.5)
                                  * (m1 ** -0.5 + d1 ** -0.5) ** (1 / 3) / m, rel=1e-10)


@pytest.mark.parametrize("cov, n, rel", [(tb.isotropic(10), 40, 0.1),
                                         (tb.power_law(10, 1.0), 30, 0.35)])
def test_divergence_probability_matches_monte_carlo(cov, n, rel):
    V = tb.theory.pseudo_newton_v(cov, n).numpy()
    p = divergence_probability(V, cov.numpy(), 30)
    S = sample_moments(cov.numpy(), 30, 100_000, seed=17)
    mc = (prompt_spectra(V, S).nu_max > 2).mean()
    assert 5e-3 < mc < 0.2 and p == pytest.approx(mc, rel=rel)


def _chain_errors(P, X, noise_std, n_steps, n_draws, rng):
    """Mean over draws of w and ε of ||ŵ_k − w||²/d, iterating ŵ ← ŵ − P(Ŝŵ − b)."""
    m, d = X.shape
    S = X.T @ X / m
    w = rng.standard_normal((n_draws, d))
    y = w @ X.T + noise_std * rng.standard_normal((n_draws, m))
    b = y @ X / m
    w_hat, out = np.zeros_like(w), [np.mean(w ** 2, 1)]
    for _ in range(n_steps):
        w_hat = w_hat - (w_hat @ S - b) @ P.T
        out.append(np.mean((w_hat - w) ** 2, 1))
    return np.array(out).T                                      # (draws, K+1)


@pytest.mark.parametrize("cov, m, noise_std", [(tb.power_law(5, 1.0), 8, 0.7),
                                               (tb.isotropic(5), 4, 0.3),
                                               (tb.power_law(5, 1.0), 3, 0.0)])
def test_spectral_errors_are_the_chain_averaged_over_w_and_noise(cov, m, noise_std):
    rng = np.random.default_rng(3)
    P = -tb.theory.pseudo_newton_v(cov, 6).numpy()
    X = rng.standard_normal((3, m, 5)) @ np.linalg.cholesky(cov.numpy()).T
    exact = spectral_errors(prompt_spectra(-P, X=X), 12, noise_std, m)
    assert np.allclose(exact, spectral_errors(prompt_spectra(
        -P, X.transpose(0, 2, 1) @ X / m), 12, noise_std, m))
    assert exact[:, 0] == pytest.approx(1.0)
    for x, row in zip(X, exact):
        draws = _chain_errors(P, x, noise_std, 12, 40_000, rng)
        se = draws.std(0) / len(draws) ** 0.5
        assert np.all(np.abs(draws.mean(0) - row) < 4 * se + 1e-12)


def test_general_and_isotropic_paths_agree():
    S = sample_moments(np.eye(4), 6, 50, seed=1)
    V = -0.6 * np.eye(4)
    V_tilted = V.copy()
    V_tilted[0, 0] -= 1e-9                                     # forces the general path
    fast, slow = (spectral_errors(prompt_spectra(v, S), 30, 0.5, 6) for v in (V, V_tilted))
    assert prompt_spectra(V, S).signal is None
    assert np.allclose(fast, slow, rtol=1e-6)


def test_best_k_and_horizon_match_an_independent_monte_carlo():
    # Noisy labels and a short prompt: the mean has an interior minimum (noise fitting)
    # and a tail (ν_max > 2 on about 1% of prompts) that makes it turn up again.
    d, m, n, sigma, K = 6, 14, 10, 0.5, 40
    cov = tb.isotropic(d)
    V = tb.theory.pseudo_newton_v(cov, n)
    stats = tail_stats(V.numpy(), cov.numpy(), m, K, 200_000, noise_std=sigma, seed=2)
    prompts = tb.RegressionTask(cov, sigma).sample(m, 40_000, seed=5, split="eval",
                                                   dtype=torch.float64)
    W = tb.PseudoNewton(V).predict(prompts, K)
    direct = prompts.errors(W).numpy()                           # (B, K): k = 1..K
    low, high = stats.mean_ci()
    k_best, k_lo, k_hi = stats.best_k()
    assert 0.002 < stats.divergent_fraction()[0] < 0.05 and 0 < k_lo <= k_best <= k_hi < K
    se = direct[:, :k_hi].std(0) / len(direct) ** 0.5
    mean_direct = direct.mean(0)
    assert np.all(np.abs(mean_direct[:k_hi] - stats.mean[1:k_hi + 1]) < 4 * se)
    assert k_lo <= np.argmin(mean_direct) + 1 <= k_hi
    eps = 1.3 * stats.mean[k_best]
    start, k_h, h_lo, h_hi = stats.horizon(eps)
    assert start < k_best <= h_lo <= k_h <= h_hi < K
    assert stats.mean[k_h] <= eps < stats.mean[k_h + 1]
    assert (stats.median[k_h:] < eps).all()                      # the median does not turn
    assert stats.horizon(0.1 * stats.mean[k_best]) is None


def test_bad_arguments_get_one_line_errors():
    with pytest.raises(BadValue, match="V must be symmetric negative definite"):
        prompt_spectra(np.eye(3), np.eye(3)[None])
    with pytest.raises(BadValue, match="test_cov"):
        sample_moments(np.ones(3), 4, 10)
    with pytest.raises(BadValue, match="exactly one of S"):
        prompt_spectra(-np.eye(2))
    with pytest.raises(BadValue, match="m must be"):
        spectral_errors(prompt_spectra(-np.eye(2), np.eye(2)[None]), 3, noise_std=0.5)


def test_isotropic_paths_have_the_law_of_the_chain():
    # Errors, residuals (less ||ε||²/m) and residual-stop choices of the sampled paths
    # against the chain run on real prompts (d = 6, m = 9, σ = 0.4, c = 0.7).
    d, m, sigma, c, K = 6, 9, 0.4, 0.7, 15
    err, res = isotropic_paths(c, sample_moments(np.eye(d), m, 60_000, seed=8), sigma, m, K,
                               seed=9)
    prompts = tb.RegressionTask(tb.isotropic(d), sigma).sample(m, 60_000, seed=3,
                                                               split="eval",
                                                               dtype=torch.float64)
    W = tb.PseudoNewton(-c * torch.eye(d, dtype=torch.float64)).predict(prompts, K)
    direct = prompts.errors(W).numpy()
    noise = ((prompts.y - torch.einsum("bnd,bd->bn", prompts.X, prompts.w)) ** 2).mean(1)
    residual = (tb.stopping.prompt_residuals(prompts, W) - noise[:, None]).numpy()
    for mine, theirs in ((err[:, 1:], direct), (res[:, 1:], residual)):
        se = np.hypot(mine.std(0), theirs.std(0)) / 60_000 ** 0.5
        assert np.all(np.abs(mine.mean(0) - theirs.mean(0)) < 4 * se)
    stop = tb.stopping.residual_stop(torch.as_tensor(res[:, 1:]))
    stop_direct = tb.stopping.residual_stop(torch.as_tensor(residual))
    shares = [np.bincount(s.numpy(), minlength=K + 1)[1:] / 60_000 for s in (stop, stop_direct)]
    assert np.abs(shares[0] - shares[1]).max() < 0.01 and shares[0].max() < 0.8
