"""The compute planner: its frontier is the closed form, its cheapest point is the brute-force
minimum (an exact integer search), its median-safe k follow the divergence threshold, its
plan holds in Monte Carlo, it reports mean, median, horizon and tail, and bad arguments get
one-line errors."""
import math

import numpy as np
import pytest
import torch

import ttsbook as tb
from ttsbook.checks import BadValue
from ttsbook.planner import Plan
from ttsbook.plots import draw_plan

I5 = tb.isotropic(5)


def _population(cov, n, k):
    return tb.theory.population_error(tb.theory.pseudo_newton_v(cov, n), cov, k)[k].item()


def _finite(d, m, n, k):
    return tb.theory.finite_prompt_error(tb.theory.pseudo_newton_v(tb.isotropic(d), n), tb.isotropic(d), m,
                                  k)[k].item()


def test_population_frontier_is_the_closed_form():
    ks = np.arange(1, 9)
    law = tb.theory.n_star(5, ks, 0.01).numpy()
    for spectrum in (I5, 5.0):  # the covariance (exact) and its hardness (the law) agree for I
        p = tb.planner.plan(5, spectrum, None, 0.01, 1.0, 1.0, n_steps=8)
        assert np.allclose(p.n_frontier, law, rtol=1e-6)
        assert (p.n_needed == np.ceil(law)).all() and p.median_safe.all() and p.n_diverge == math.inf
    skew = tb.power_law(5, 1.0)
    p = tb.planner.plan(5, skew, None, 0.01, 1.0, 1.0, n_steps=8)
    for k, n, n_int in zip(p.ks, p.n_frontier, p.n_needed):
        assert _population(skew, n, int(k)) == pytest.approx(0.01, rel=1e-6)
        assert _population(skew, n_int, int(k)) <= 0.01 < _population(skew, n_int - 1, int(k))
    assert (p.n_frontier < tb.theory.n_star(tb.hardness(skew), ks, 0.01).numpy()).all()  # law: pessimistic


def test_finite_m_frontier_is_the_finite_prompt_error():
    p = tb.planner.plan(5, I5, 15, 0.05, 1.0, 1.0, n_steps=10)
    assert p.model.startswith("finite m")
    reach = np.isfinite(p.n_frontier)
    assert reach.sum() >= 5 and not reach[0]           # k = 1 cannot reach 0.05 at m = 15
    for k, n, n_int in zip(p.ks[reach], p.n_frontier[reach], p.n_needed[reach]):
        if n > 1:
            assert _finite(5, 15, n, int(k)) == pytest.approx(0.05, rel=1e-3)
        assert _finite(5, 15, n_int, int(k)) <= 0.05 < _finite(5, 15, max(n_int - 1, 1), int(k)) \
            or n_int == 1
    one_step_floor = min(_finite(5, 15, n, 1) for n in range(1, 200))   # integers
    assert p.floor[0] == pytest.approx(one_step_floor) and p.floor[0] > 0.05


@pytest.mark.parametrize("spectrum, m, eps, costs", [
    (I5, None, 0.01, (1.0, 1.0)), (tb.power_law(5, 1.0), None, 0.02, (1.0, 4.0)),
    (I5, 12, 0.05, (1.0, 2.0)), (tb.isotropic(4), 30, 0.02, (3.0, 1.0)),
])
def test_cheapest_point_is_the_brute_force_minimum(spectrum, m, eps, costs):
    d, K = spectrum.shape[0], 12
    p = tb.planner.plan(d, spectrum, m, eps, *costs, n_steps=K)
    n_safe = p.n_diverge if m else math.inf
    best = math.inf
    for n in range(1, 120):
        errors = (tb.theory.population_error(tb.theory.pseudo_newton_v(spectrum, n), spectrum, K)[1:] if m is None
                  else tb.theory.finite_prompt_error(tb.theory.pseudo_newton_v(spectrum, n), spectrum, m, K)[1:])
        for k in np.flatnonzero(errors.numpy() <= eps) + 1:
            if n <= n_safe:
                best = min(best, costs[0] * n + costs[1] * k)
    assert p.cost == pytest.approx(best) and p.cost == costs[0] * p.n + costs[1] * p.k
    assert p.error <= eps


def test_integer_search_finds_the_narrow_window_a_log_grid_missed():
    # Λ = I, d = 12, m = 30: one pass reaches its floor (d+1)/(m+d+1) only near n = m; a
    # 100-point log grid answered (7, 2) at cost 107, while (29, 1) costs 79.
    d, m = 12, 30
    eps = 1.0003 * (d + 1) / (m + d + 1)
    p = tb.planner.plan(d, tb.isotropic(d), m, eps, 1.0, 50.0, n_prompts=0)
    assert (p.n, p.k, p.cost) == (29, 1, 79.0) and p.error <= eps
    errs = [_finite(d, m, n, 1) for n in range(1, 80)]
    assert [n for n, e in zip(range(1, 80), errs) if e <= eps][0] == 29
    assert p.floor[0] == pytest.approx(min(errs))


def test_cost_of_a_pass_can_grow_with_the_prompt():
    flat = tb.planner.plan(5, I5, 20, 0.02, 1.0, 0.2, n_prompts=0)
    token = tb.planner.plan(5, I5, 20, 0.02, 1.0, 0.2 / 20, per_token=True, n_prompts=0)
    k = token.ks
    assert np.allclose(token.costs(), token.n_needed + 0.01 * (20 * k + k * (k - 1) / 2))
    assert token.cost == np.nanmin(token.costs()[token.median_safe]) and token.k <= flat.k
    assert "per_token" in tb.planner.COST_MODEL
    assert token.cost_formula.endswith("(k·m + k(k−1)/2)") and flat.cost_formula.endswith("·k")


def test_plan_reports_mean_median_horizon_and_tail():
    # d = 6, m = 12 (a configuration the chapters do not use): the mean turns up after a
    # horizon while the median keeps falling; the report agrees with iterating the chain.
    d, m, eps = 6, 12, 0.1
    p = tb.planner.plan(d, tb.isotropic(d), m, eps, 1.0, 1.0, n_steps=12, n_prompts=100_000,
                k_eval=120, seed=4)
    stats = p.stats
    assert p.mean_error == stats.mean[p.k] and p.median_error < p.mean_error
    assert p.k < p.horizon < p.k_eval
    assert stats.mean[p.horizon] <= max(eps, p.mean_error) < stats.mean[p.horizon + 1]
    assert stats.mean[-1] > 10 and stats.median[-1] < stats.median[p.k]
    mc = stats.divergent_fraction()
    assert stats.n_diverging > 20 and mc[1] / 2 < p.tail < 2 * mc[2]
    prompts = tb.RegressionTask(tb.isotropic(d)).sample(m, 20_000, seed=9, split="eval",
                                                        dtype=torch.float64)
    direct = tb.prompt_errors(tb.PseudoNewton.trained(tb.isotropic(d), p.n), prompts, p.k)
    err = direct[:, -1].numpy()
    assert abs(err.mean() - p.mean_error) < 4 * err.std() / len(err) ** 0.5
    population = tb.planner.plan(d, tb.isotropic(d), None, eps, 1.0, 1.0)
    assert population.tail == 0 and population.horizon == math.inf
    assert population.mean_error == population.median_error == population.error


def test_more_expensive_passes_buy_fewer_of_them():
    ks = [tb.planner.plan(5, 5.0, None, 0.001, 1.0, c, n_steps=20).k for c in (0.1, 1.0, 10.0, 100.0)]
    assert ks == sorted(ks, reverse=True) and ks[0] > ks[-1]


def test_median_safe_k_follow_the_divergence_threshold():
    d, m = 5, 12
    p = tb.planner.plan(d, I5, m, 0.1, 1.0, 1.0, n_steps=12)
    assert p.n_diverge == tb.theory.divergence_threshold(d, m)
    reach = np.isfinite(p.n_needed)
    assert (p.median_safe == (p.n_needed <= p.n_diverge)).all()
    lo, hi = p.k_median_safe
    assert (p.ks[reach & p.median_safe] == np.arange(lo, hi + 1)).all() and hi == 12 and lo > 1
    # In distribution the frontier never crosses the threshold: at fixed k the finite-m
    # error bottoms out below it (k = 1: c = 1/(1 + γ) is best and c·λ₊ <= 2).
    for d_, m_, eps in ((5, 7, 0.3), (8, 16, 0.05), (4, 6, 0.3)):
        q = tb.planner.plan(d_, float(d_), m_, eps, 1.0, 1.0, n_steps=12)
        assert q.n_diverge < math.inf and np.isfinite(q.n_needed).any()
        assert q.median_safe[np.isfinite(q.n_needed)].all()
    # Monte Carlo (d = 20, where the Marchenko–Pastur edge is sharp): at the planned n the
    # typical prompt's Γ⁻¹Ŝ_m stays below 2, at twice the threshold it does not.
    I20 = tb.isotropic(20)
    q = tb.planner.plan(20, I20, 40, 0.05, 1.0, 1.0, n_steps=12)
    prompts = tb.RegressionTask(I20).sample(40, 1000, seed=3, split="eval", dtype=torch.float64)
    for n, diverging in ((q.n, False), (2 * q.n_diverge, True)):
        share = (tb.stopping.prompt_mu_max(tb.theory.pseudo_newton_v(I20, n), prompts) > 2).double().mean()
        assert (share > 0.5) == diverging
    skew = tb.power_law(5, 1.0)  # in population (Σ = Λ) every μ_j < 1: all k safe
    assert tb.theory.mu_spectrum(tb.theory.pseudo_newton_v(skew, 1e4), skew).max() < 1
    assert tb.planner.plan(5, skew, None, 0.01, 1.0, 1.0).median_safe.all()


def test_error_floor_is_reported_not_hidden():
    p = tb.planner.plan(5, I5, 4, 0.1, 1.0, 1.0, n_steps=10)   # m < d: Ŝ_m misses d − m directions
    assert p.n is None and p.k is None and "floor" in p.reason
    assert p.floor.min() >= 1 - 4 / 5 - 1e-9
    assert not np.isfinite(p.n_needed).any() and p.k_median_safe is None
    assert "n_max = 10000" in p.reason


@pytest.mark.parametrize("spectrum, m, eps", [(I5, 20, 0.03), (tb.power_law(4, 1.0), None, 0.02)])
def test_recommended_point_reaches_eps_in_monte_carlo(spectrum, m, eps):
    d = spectrum.shape[0]
    p = tb.planner.plan(d, spectrum, m, eps, 1.0, 2.0, n_steps=12)
    m_test = m or 1000  # m → ∞ plans, checked on long prompts
    prompts = tb.RegressionTask(spectrum).sample(m_test, 2000, seed=11, split="eval",
                                                 dtype=torch.float64)
    err = tb.prompt_errors(tb.PseudoNewton.trained(spectrum, p.n), prompts, p.k)[:, -1]
    mean, se = err.mean().item(), err.std().item() / len(err) ** 0.5
    assert mean <= 1.1 * eps
    assert abs(mean - p.error) < 0.1 * p.error + 3 * se


def test_draw_plan_returns_the_ax():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    for p in (tb.planner.plan(5, I5, 12, 0.05, 1.0, 2.0), tb.planner.plan(5, I5, 4, 0.1, 1.0, 1.0)):
        assert draw_plan(ax, p) is ax and isinstance(p, Plan)
    plt.close(fig)


@pytest.mark.parametrize("change, arg", [
    ({"cost_train": 0.0}, "cost_train"), ({"cost_train": -1.0}, "cost_train"),
    ({"cost_pass": 0}, "cost_pass"), ({"cost_pass": -2.0}, "cost_pass"),
    ({"eps": 0.0}, "eps"), ({"eps": -0.1}, "eps"), ({"eps": 1.0}, "eps"),
    ({"m": 0}, "m"), ({"m": -3}, "m"), ({"m": 2.5}, "m"), ({"n_dims": 0}, "n_dims"),
    ({"n_steps": 0}, "n_steps"), ({"spectrum": torch.eye(3)}, "spectrum"),
    ({"spectrum": torch.diag(torch.tensor([1.0, 1, 1, 1, 0]))}, "spectrum"),
    ({"spectrum": -torch.eye(5)}, "spectrum"), ({"spectrum": 4.0}, "spectrum"),
    ({"spectrum": math.inf}, "spectrum"), ({"spectrum": "power:1"}, "spectrum"),
    ({"spectrum": tb.power_law(5, 1.0)}, "m"),        # finite m needs isotropic training
    ({"m": None, "per_token": True}, "per_token"), ({"n_prompts": -1}, "n_prompts"),
    ({"k_eval": 5}, "k_eval"),
])
def test_bad_arguments_get_one_line_errors(change, arg):
    args = {"n_dims": 5, "spectrum": I5, "m": 20, "eps": 0.05, "cost_train": 1.0,
            "cost_pass": 1.0, "n_steps": 10} | change
    with pytest.raises(BadValue) as err:
        tb.planner.plan(**args)
    assert err.value.arg == arg and arg in str(err.value) and "\n" not in str(err.value)
