"""Label-noise closed forms (ttsbook.theory.noise) against Monte Carlo and exact algebra."""
import pytest
import torch

import ttsbook as tb
from ttsbook import theory
from ttsbook.checks import DTYPE


def _noisy(d, m, sigma, reps, seed):
    task = tb.RegressionTask(tb.isotropic(d), noise_std=sigma)
    return task.sample(m, reps, seed=seed, split="eval", dtype=DTYPE)


def test_one_step_error_with_noise_any_v_matches_monte_carlo():
    d, m, sigma = 5, 12, 2.0
    cov = tb.rotate(tb.power_law(d, 0.7), seed=4)
    gen = torch.Generator().manual_seed(0)
    V = -0.3 * torch.eye(d, dtype=DTYPE) + 0.05 * torch.randn(d, d, generator=gen, dtype=DTYPE)
    task = tb.RegressionTask(cov, noise_std=sigma)
    prompts = task.sample(m, 100_000, seed=9, split="eval", dtype=DTYPE)
    mc = tb.prompt_errors(tb.PseudoNewton(V), prompts, 1).mean().item()
    exact = theory.one_step_error(V, cov, m, sigma)
    assert exact > tb.theory.one_step_error(V, cov, m) + 0.01       # the noise term is visible
    assert mc == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("m", [5, 12, 30, 45])
def test_least_squares_error_matches_monte_carlo(m):
    d, sigma = 10, 0.5
    prompts = _noisy(d, m, sigma, 40_000, seed=m)
    mc = tb.prompt_errors(tb.LeastSquares(), prompts, 1).mean().item()
    assert mc == pytest.approx(theory.least_squares_error(d, m, sigma), rel=0.04)


def test_least_squares_error_peak_and_noiseless_limit():
    d = 10
    assert theory.least_squares_error(d, d, 0.5) == float("inf")
    assert theory.least_squares_error(d, d + 1, 0.1) == float("inf")
    assert theory.least_squares_error(d, d, 0.0) == 0.0
    assert theory.least_squares_error(d, 4, 0.0) == pytest.approx(0.6)
    assert theory.least_squares_error(d, 31, 1.0) == pytest.approx(1 / 20)


def test_finite_prompt_error_with_noise_exact_at_k_1_and_close_to_monte_carlo():
    d, n, m, sigma = 20, 15, 30, 0.5
    c = n / (n + d + 1)
    prompts = _noisy(d, m, sigma, 20_000, seed=1)
    mc = tb.prompt_errors(tb.PseudoNewton.trained(tb.isotropic(d), n), prompts, 40).mean(0)
    law = theory.finite_prompt_error(-c * torch.eye(d, dtype=DTYPE), tb.isotropic(d), m, 40, sigma)
    assert law[1].item() == theory.one_step_error(-c * torch.eye(d, dtype=DTYPE), tb.isotropic(d), m,
                                                  sigma)
    assert torch.equal(theory.finite_prompt_error(-c * torch.eye(d, dtype=DTYPE), tb.isotropic(d), m, 9),
                       theory.finite_prompt_error(-c * torch.eye(d, dtype=DTYPE), tb.isotropic(d), m, 9,
                                                  noise_std=0.0))
    assert (law[1:] > theory.finite_prompt_error(-c * torch.eye(d, dtype=DTYPE), tb.isotropic(d), m,
                                                 40)[1:]).all()              # noise only adds
    assert mc[0].item() == pytest.approx(law[1].item(), rel=0.01)
    # k >= 2: the Marchenko–Pastur approximation (with its 1/d correction)
    assert torch.allclose(mc[[1, 4, 9, 19, 39]], law[[2, 5, 10, 20, 40]], rtol=0.03)


def test_finite_prompt_error_with_noise_tends_to_the_least_squares_limit():
    d, m, sigma = 20, 40, 0.5
    law = theory.finite_prompt_error(-0.4 * torch.eye(d, dtype=DTYPE), tb.isotropic(d), m, 2000, sigma)
    exact = theory.least_squares_error(d, m, sigma)          # σ²/(m − d − 1)
    assert law[-1].item() == pytest.approx(exact, rel=0.005)
    assert abs(law[-1].item() - sigma ** 2 / (m - d)) > 0.02 * exact  # not the bare MP limit


def test_filter_error_is_exact_given_the_prompt():
    d, m, sigma, reps = 6, 9, 0.5, 200_000
    X = _noisy(d, m, 0.0, 1, seed=3).X.expand(reps, -1, -1)   # one X, many (w, ε)
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(reps, d, generator=gen, dtype=DTYPE)
    y = torch.einsum("bnd,bd->bn", X, w) + sigma * torch.randn(reps, m, generator=gen, dtype=DTYPE)
    prompts = tb.Prompts(X, y, w)
    gamma = 0.3
    mc = ((tb.Ridge(gamma).predict(prompts, 1)[:, 0] - w) ** 2).mean().item()
    S = X[:1].transpose(1, 2) @ X[:1] / m
    exact = theory.filter_error(S, lambda lam: theory.ridge_filter(lam, gamma), sigma, m).item()
    assert mc == pytest.approx(exact, rel=0.01)
    k, c = 7, 0.2
    gd = tb.prompt_errors(tb.GradientDescent(c, d), prompts, k)[:, -1].mean().item()
    exact = theory.filter_error(S, lambda lam: theory.gd_filter(lam, c, k), sigma, m).item()
    assert gd == pytest.approx(exact, rel=0.01)


def test_ridge_sandwiches_gradient_descent():
    x = torch.linspace(0, 1, 501, dtype=DTYPE)
    for k in (1, 3, 30):
        gd = theory.gd_filter(x, 1.0, k)
        rd = theory.ridge_filter(x, theory.ridge_gamma(k, 1.0))
        assert (rd <= gd + 1e-15).all() and (gd <= 2 * rd + 1e-15).all()


@pytest.mark.parametrize("call, match", [
    (lambda: theory.least_squares_error(0, 5, 0.1), r"^n_dims must be an integer >= 1, got 0$"),
    (lambda: theory.least_squares_error(5, 0, 0.1), r"^m must be an integer >= 1, got 0$"),
    (lambda: theory.least_squares_error(5, 9, -0.1), r"^noise_std must be a number >= 0"),
    (lambda: theory.finite_prompt_error(-torch.eye(5), tb.isotropic(5), 9, 3, -0.1),
     r"^noise_std must be a number >= 0"),
    (lambda: theory.finite_prompt_error(-torch.eye(5), tb.isotropic(5), 9, -1, 0.1),
     r"^n_steps must be an integer >= 0"),
    (lambda: theory.ridge_gamma(0, 0.5), r"^k must be an integer >= 1, got 0$"),
    (lambda: theory.ridge_filter(1.0, 0.0), r"^gamma must be a number > 0, got 0.0$"),
    (lambda: theory.gd_filter(1.0, -1.0, 2), r"^eta must be a number > 0"),
    (lambda: theory.one_step_error(-torch.eye(3), tb.isotropic(2), 4, 0.1),
     r"^V must have shape \(2, 2\)"),
])
def test_bad_inputs_are_rejected_in_one_line(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
