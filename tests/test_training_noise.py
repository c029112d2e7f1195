"""Label noise in training (the optimum −(Γ + σ²I/n)⁻¹) and misaligned eigenbases (a non-normal
step): closed forms against training, exact solves and Monte Carlo, on configurations the
chapter `training_against_overthinking` does not use."""
import math

import pytest
import torch

import ttsbook as tb
from ttsbook import experiments
from ttsbook.checks import BadValue
from ttsbook.evaluate import prompt_errors
from ttsbook.theory import (aligned_error, contracting_noise, misalignment_bound, mu_spectrum,
                            noisy_direct_loss, noisy_gamma, noisy_pseudo_newton_v, one_step_error,
                            population_error, pseudo_newton_v, tilt, transient)

DTYPE = torch.float64


def _rel(a, b):
    return (torch.linalg.norm(a - b) / torch.linalg.norm(b)).item()


def _moments(cov, n, sigma, n_prompts, seed):
    """b = Xᵀy/n and w of ``n_prompts`` noisy prompts, in chunks of 10,000."""
    task, bs, ws = tb.RegressionTask(cov, noise_std=sigma), [], []
    for step in range(n_prompts // 10_000):
        p = task.sample(n, 10_000, seed=seed, step=step, dtype=DTYPE)
        bs.append(p.moments()[1])
        ws.append(p.w)
    return torch.cat(bs), torch.cat(ws)


def test_noisy_optimum_is_the_exact_least_squares_map_of_monte_carlo_prompts():
    # The optimum of the empirical direct loss over N prompts is the regression of w on b:
    # P̂ = WᵀB (BᵀB)⁻¹. It converges to Γ_σ⁻¹, not to the noiseless Γ⁻¹.
    cov, n, sigma = tb.rotate(tb.power_law(5, 1.0), seed=3), 9, 1.5
    B, W = _moments(cov, n, sigma, 400_000, seed=5)
    P_mc = torch.linalg.solve(B.T @ B, B.T @ W).T
    target = noisy_pseudo_newton_v(cov, n, sigma)
    gap = _rel(pseudo_newton_v(cov, n), target)        # what the noise moves
    assert gap > 0.1
    assert _rel(-P_mc, target) < 0.05 * gap            # measured: 0.004 (gap 0.17)


def test_noisy_direct_loss_matches_monte_carlo_for_any_v():
    cov, n, sigma = tb.rotate(tb.missing_skills(4, [2], 0.1), seed=1), 6, 0.7
    B, W = _moments(cov, n, sigma, 200_000, seed=2)
    V_any = -0.3 * torch.eye(4, dtype=DTYPE) + 0.05 * tb.rotate(torch.eye(4, dtype=DTYPE), 4)
    for V in (V_any, noisy_pseudo_newton_v(cov, n, sigma)):
        mc = ((-B @ V.T - W) ** 2).mean().item()
        assert abs(mc / noisy_direct_loss(V, cov, n, sigma) - 1) < 0.01
    best = noisy_direct_loss(noisy_pseudo_newton_v(cov, n, sigma), cov, n, sigma)
    Gs = noisy_gamma(cov, n, sigma)
    assert abs(best - (1 - torch.trace(torch.linalg.solve(Gs, cov)).item() / 4)) < 1e-12
    for V in (V_any, pseudo_newton_v(cov, n)):          # nothing beats the noisy optimum
        assert noisy_direct_loss(V, cov, n, sigma) > best


def test_noisy_gamma_is_sigma_squared_of_extra_trace():
    cov, n, sigma = tb.power_law(6, 0.5), 11, 1.3
    shifted = (1 + 1 / n) * cov + (torch.trace(cov) + sigma ** 2) / n * torch.eye(6, dtype=DTYPE)
    assert torch.allclose(noisy_gamma(cov, n, sigma), shifted, atol=1e-12)
    assert torch.allclose(noisy_gamma(cov, n, 0.0), tb.theory.gamma(cov, n), atol=0)


def test_trained_lsa_on_noisy_labels_lands_on_the_noisy_optimum():
    cov, n, sigma = tb.rotate(tb.power_law(5, 1.0), seed=7), 12, 1.5
    config = tb.TrainConfig(steps=300, batch_size=1024, lr=0.03, seed=1, log_every=50)
    models, history = experiments.train_lsas(cov, [n], config, noise_std=sigma, device="cpu")
    V = experiments.learned_v(models[n])
    target = noisy_pseudo_newton_v(cov, n, sigma)
    gap = _rel(pseudo_newton_v(cov, n), target)
    assert history.distance.iloc[-1] == pytest.approx(_rel(V, target))
    assert _rel(V, target) < 0.25 * gap                 # measured about 0.01 vs gap 0.13
    assert _rel(V, pseudo_newton_v(cov, n)) > 0.5 * gap


def test_contracting_noise_puts_mu_max_exactly_at_two_for_any_test_covariance():
    for cov, test_cov, n in [
        (tb.missing_skills(6, [4, 5], 0.05), tb.isotropic(6), 30),
        (tb.rotate(tb.power_law(5, 1.5), seed=2), tb.power_law(5, 0.3), 40),   # not commuting
    ]:
        sigma = contracting_noise(cov, n, test_cov)
        assert sigma > 0
        assert mu_spectrum(pseudo_newton_v(cov, n), test_cov).max() > 2
        top = mu_spectrum(noisy_pseudo_newton_v(cov, n, sigma), test_cov).max().item()
        assert abs(top - 2) < 1e-9
        for factor, contracts in ((0.9, False), (1.1, True)):
            mu = mu_spectrum(noisy_pseudo_newton_v(cov, n, factor * sigma), test_cov)
            assert (mu.max().item() < 2) == contracts
    assert contracting_noise(tb.isotropic(4), 10, tb.isotropic(4)) == 0.0


def test_noise_lowers_weak_mu_more_than_strong():
    cov, n = tb.missing_skills(5, [4], 0.02), 25
    mu0 = mu_spectrum(pseudo_newton_v(cov, n), tb.isotropic(5))
    mu1 = mu_spectrum(noisy_pseudo_newton_v(cov, n, 1.0), tb.isotropic(5))
    drop = mu1 / mu0                                    # ascending: strong first, weak last
    assert (drop < 1).all() and drop[-1] < drop[0] - 0.1


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "1"])
def test_bad_noise_std_is_a_bad_value(bad):
    with pytest.raises(BadValue, match=r"^noise_std must be a finite number >= 0"):
        tb.RegressionTask(tb.isotropic(3), noise_std=bad)
    with pytest.raises(BadValue, match=r"^noise_std must be a finite number >= 0"):
        noisy_pseudo_newton_v(tb.isotropic(3), 5, bad)


# ---------------------------------------------------------------- misaligned eigenbases
def _misaligned_cases():
    yield tb.missing_skills(5, [4], 1e-3), tilt(tb.missing_skills(5, [4], 1e-3), 1, 4, 0.12), 80
    yield tb.rotate(tb.power_law(6, 1.5), seed=5), tb.power_law(6, 0.7), 20
    yield tb.rotate(tb.power_law(4, 2.0), seed=9), tb.rotate(tb.power_law(4, 1.0), seed=1), 60


@pytest.mark.parametrize("case", list(range(3)))
def test_schur_and_condition_bounds_hold_at_every_k(case):
    cov, test_cov, n = list(_misaligned_cases())[case]
    V = pseudo_newton_v(cov, n)
    err, al = population_error(V, test_cov, 40), aligned_error(V, test_cov, 40)
    kappa = misalignment_bound(V, test_cov)
    assert (err >= al * (1 - 1e-9)).all() and (err <= kappa * al * (1 + 1e-9)).all()
    assert (err[1:] > al[1:] * 1.01).any()              # misaligned: strictly above somewhere


def test_commuting_covariances_give_the_aligned_error_exactly():
    cov, test_cov = tb.power_law(5, 1.0), tb.missing_skills(5, [0, 3], 0.3)
    V = pseudo_newton_v(cov, 15)
    assert torch.allclose(population_error(V, test_cov, 30), aligned_error(V, test_cov, 30),
                          rtol=1e-10)
    assert transient(V, test_cov, 30).excess == pytest.approx(1, abs=1e-10)


def test_tilt_rotates_in_one_plane():
    cov = tb.power_law(4, 1.0)
    out = tilt(cov, 0, 2, 0.3)
    assert torch.allclose(torch.linalg.eigvalsh(out), torch.linalg.eigvalsh(cov), atol=1e-12)
    assert torch.allclose(out[1, 1], cov[1, 1]) and out[0, 2] != 0 and out[0, 1] == 0
    assert torch.allclose(tilt(cov, 0, 2, 0.0), cov)
    with pytest.raises(BadValue, match=r"^j must differ"):
        tilt(cov, 1, 1, 0.1)
    with pytest.raises(BadValue, match=r"^i must be an integer in \[0, 4\)"):
        tilt(cov, 4, 1, 0.1)


def test_error_rises_above_its_start_with_every_mu_below_two_and_monte_carlo_agrees():
    # d = 5, one rare skill; the test's skill 1 leans 7° towards it (the chapter uses d = 4,
    # skill 0, n = 100). Monte Carlo: the closed-form map on prompts of m = 1,000 examples.
    cov = tb.missing_skills(5, [4], 1e-3)
    test_cov, n, m = tilt(cov, 1, 4, math.radians(7)), 80, 1_000
    V = pseudo_newton_v(cov, n)
    assert mu_spectrum(V, test_cov).max() < 2
    t = transient(V, test_cov, 30)
    assert t.peak > 1.1 and t.k_peak == 1 and 1 < t.excess <= t.bound
    assert aligned_error(V, test_cov, 30).diff().max() < 0   # aligned: falls at every k
    prompts = tb.RegressionTask(test_cov).sample(m, 4_000, seed=3, split="eval", dtype=DTYPE)
    errors = prompt_errors(tb.PseudoNewton(V), prompts, 6)
    se = errors[:, 0].std().item() / 4_000 ** 0.5
    assert abs(errors[:, 0].mean().item() - one_step_error(V, test_cov, m)) < 4 * se  # exact
    pop = population_error(V, test_cov, 6)[1:]
    assert ((errors.mean(0) / pop - 1).abs() < 0.1).all()         # w's χ² noise: ±2% s.e.
    # The same prompts, averaged exactly over w: ||(I − PŜ)^k||_F²/d per prompt.
    step = torch.eye(5, dtype=DTYPE) + V @ prompts.moments()[0]   # (B, d, d)
    power, exact_w = step.clone(), []
    for _ in range(6):
        exact_w.append((power ** 2).sum((1, 2)).mean().item() / 5)
        power = step @ power
    assert ((torch.tensor(exact_w, dtype=DTYPE) / pop - 1).abs() < 0.02).all()


def test_misalignment_bound_rejects_a_non_symmetric_v():
    V = -torch.eye(3, dtype=DTYPE)
    V[0, 1] = 0.5
    with pytest.raises(BadValue, match="symmetric"):
        misalignment_bound(V, tb.isotropic(3))
