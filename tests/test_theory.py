"""Closed forms against Monte Carlo, exact solves and brute force."""
import itertools

import numpy as np
import pytest
import torch

import ttsbook as tb
from ttsbook.checks import DTYPE


def _mc_sample_cov(cov, n, reps, seed):
    """``reps`` empirical covariances Ŝ = XᵀX/n, each from n samples of N(0, cov): (reps, d, d)."""
    X = tb.RegressionTask(cov).sample(n, reps, seed=seed, dtype=DTYPE).X
    return X.transpose(1, 2) @ X / n


def test_wishart_identity_non_diagonal():
    d, n = 4, 6
    cov = tb.rotate(tb.power_law(d, 1.0), seed=3)
    B = torch.randn(d, d, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    B = B + B.T + 0.5 * torch.randn(d, d, generator=torch.Generator().manual_seed(2), dtype=DTYPE)  # non-symmetric
    S = _mc_sample_cov(cov, n, 400_000, seed=5)
    mc = (S @ B @ S).mean(0)
    exact = tb.theory.wishart_second_moment(cov, B, n)
    assert torch.linalg.norm(mc - exact) / torch.linalg.norm(exact) < 0.02


@pytest.mark.parametrize("n, expected", [(10, 10.27), (20, 7.75), (30, 7.02)])
def test_one_step_error_known_values(n, expected):
    eye = tb.isotropic(20)
    assert 20 * tb.theory.one_step_error(tb.theory.pseudo_newton_v(eye, n), eye, 40) == pytest.approx(expected, abs=0.005)


@pytest.mark.parametrize("n", [10, 20, 30])
def test_one_step_error_matches_monte_carlo(n):
    eye, m = tb.isotropic(20), 40
    prompts = tb.RegressionTask(eye).sample(m, 20_000, seed=n, split="eval", dtype=DTYPE)
    mc = tb.prompt_errors(tb.PseudoNewton.trained(eye, n), prompts, 1).mean().item()
    exact = tb.theory.one_step_error(tb.theory.pseudo_newton_v(eye, n), eye, m)
    assert mc == pytest.approx(exact, rel=0.02)


def test_one_step_error_any_v_non_isotropic():
    d, m = 5, 12
    sigma = tb.rotate(tb.power_law(d, 0.7), seed=4)
    V = -0.3 * torch.eye(d, dtype=DTYPE) + 0.05 * torch.randn(d, d, generator=torch.Generator().manual_seed(0),
                                                               dtype=DTYPE)
    prompts = tb.RegressionTask(sigma).sample(m, 100_000, seed=9, split="eval", dtype=DTYPE)
    mc = tb.prompt_errors(tb.PseudoNewton(V), prompts, 1).mean().item()
    assert mc == pytest.approx(tb.theory.one_step_error(V, sigma, m), rel=0.02)


def test_population_error_matches_monte_carlo_at_large_m():
    d, n, K = 6, 10, 5
    lam = tb.rotate(tb.power_law(d, 1.0), seed=1)
    sigma = tb.isotropic(d)
    V = tb.theory.pseudo_newton_v(lam, n)
    prompts = tb.RegressionTask(sigma).sample(4000, 2000, seed=2, split="eval", dtype=DTYPE)
    mc = tb.prompt_errors(tb.PseudoNewton(V), prompts, K).mean(0)
    exact = tb.theory.population_error(V, sigma, K)
    assert exact[0] == pytest.approx(1.0)
    assert torch.allclose(mc, exact[1:], rtol=0.03)


def test_scaling_law_is_equality_for_isotropic_and_bound_otherwise():
    d, n, K = 8, 15, 6
    eye = tb.isotropic(d)
    assert torch.allclose(tb.theory.population_error(tb.theory.pseudo_newton_v(eye, n), eye, K), tb.theory.scaling_law(eye, n, K))
    lam = tb.rotate(tb.power_law(d, 1.5), seed=0)
    pop = tb.theory.population_error(tb.theory.pseudo_newton_v(lam, n), lam, K)
    assert (pop <= tb.theory.scaling_law(lam, n, K) + 1e-12).all()
    assert (pop[1:] < tb.theory.scaling_law(lam, n, K)[1:]).all()


def test_n_star_inverts_the_scaling_law():
    hard, eps = 20.0, 0.01
    for k in (1, 2, 5):
        n = tb.theory.n_star(hard, k, eps).item()
        assert tb.theory.scaling_law(hard, n, k)[k].item() == pytest.approx(eps)
    lam = tb.rotate(tb.power_law(6, 1.0), seed=1)                 # a covariance or its hardness
    assert torch.equal(tb.theory.scaling_law(lam, 9, 4), tb.theory.scaling_law(tb.hardness(lam), 9, 4))
    ks = torch.arange(1, 6)
    assert (tb.theory.n_star(hard, ks, eps).diff() < 0).all()  # more steps, shorter context


def test_gd_step_for_isotropic_training():
    d, n = 7, 12
    assert torch.allclose(tb.theory.pseudo_newton_v(tb.isotropic(d), n), -n / (n + d + 1) * torch.eye(d, dtype=DTYPE))


def test_mu_spectrum_rule_and_values():
    d = 20
    lam = tb.power_law(d, 1.0, normalise=True)
    mus = [tb.theory.mu_spectrum(tb.theory.pseudo_newton_v(lam, n), tb.isotropic(d)).max().item() for n in (10, 20, 30)]
    assert [round(m, 2) for m in mus] == [0.43, 0.77, 1.05]  # science.md §5
    # A direction absent from training but present at test time expands once n is large.
    lam = tb.missing_skills(d, [0], eps=1e-3)
    assert tb.theory.mu_spectrum(tb.theory.pseudo_newton_v(lam, 100), tb.isotropic(d)).max() > 2


@pytest.mark.parametrize("covs, probs, match", [
    ([], None, "covs must hold at least one covariance"),
    ([torch.eye(2), torch.eye(3)], [0.5, 0.5], "covs must all share one shape"),
    ([torch.eye(2), torch.eye(2)], [0.7, 0.7], "probs must be 2 non-negative numbers summing to 1"),
    ([torch.eye(2), -torch.eye(2)], [0.5, 0.5], r"covs\[1\] must be positive semi-definite"),
])
def test_one_mixture_check_for_the_sampler_and_the_closed_forms(covs, probs, match):
    with pytest.raises(ValueError, match=match):
        tb.MixtureTask(covs, probs)
    with pytest.raises(ValueError, match=match):
        tb.theory.mixture_optimum(covs, [1.0] if probs is None else probs, 10)


def test_mixture_optimum_reduces_to_single_task_and_is_stationary():
    d, n = 4, 9
    lam = tb.rotate(tb.power_law(d, 1.0), seed=2)
    assert torch.allclose(tb.theory.mixture_optimum([lam], [1.0], n), tb.theory.pseudo_newton_v(lam, n))
    covs = [tb.isotropic(d), lam, tb.missing_skills(d, [1], 0.2)]
    probs = torch.tensor([0.2, 0.5, 0.3], dtype=DTYPE)
    V = tb.theory.mixture_optimum(covs, probs, n).requires_grad_(True)
    # Population loss d·E||(I + V Ŝ) w||²/d = tr(I) + 2 tr(V E Ŝ) + tr(V E[ŜŜ] Vᵀ).
    eye = torch.eye(d, dtype=DTYPE)
    loss = sum(p * (torch.trace(eye + 2 * V @ c) + torch.trace(V @ tb.theory.wishart_second_moment(c, eye, n) @ V.T))
               for p, c in zip(probs, covs))
    (grad,) = torch.autograd.grad(loss, V)
    assert grad.abs().max() < 1e-10


def _brute_force(covs, target):
    """Exact QP optimum by solving the KKT system on every support."""
    inv = torch.linalg.inv(target)
    best, best_val = None, float("inf")
    for size in range(1, len(covs) + 1):
        for support in itertools.combinations(range(len(covs)), size):
            cs = [covs[i] for i in support]
            Q = torch.tensor([[torch.trace(a @ inv @ inv @ b).item() for b in cs] for a in cs], dtype=DTYPE)
            b = torch.tensor([torch.trace(inv @ a).item() for a in cs], dtype=DTYPE)
            kkt = torch.zeros(size + 1, size + 1, dtype=DTYPE)
            kkt[:size, :size], kkt[:size, size], kkt[size, :size] = 2 * Q, 1, 1
            sol = torch.linalg.lstsq(kkt, torch.cat([2 * b, torch.ones(1, dtype=DTYPE)])[:, None]).solution[:size, 0]
            if (sol < -1e-10).any():
                continue
            pi = torch.zeros(len(covs), dtype=DTYPE)
            pi[list(support)] = sol.clamp(min=0) / sol.clamp(min=0).sum()
            val = tb.theory.selection_objective(covs, target, pi)
            if val < best_val:
                best, best_val = pi, val
    return best, best_val


@pytest.mark.parametrize("seed", range(4))
def test_task_selection_qp(seed):
    d, L = 5, 4
    g = torch.Generator().manual_seed(seed)
    covs = [tb.rotate(torch.diag(torch.rand(d, generator=g, dtype=DTYPE) * 3 + 0.05), seed=seed * 10 + i)
            for i in range(L)]
    target = tb.rotate(tb.power_law(d, 0.5), seed=seed)
    pi = tb.theory.task_selection(covs, target)
    assert (pi >= 0).all() and pi.sum().item() == pytest.approx(1.0)
    val = tb.theory.selection_objective(covs, target, pi)
    vertices = [tb.theory.selection_objective(covs, target, torch.eye(L, dtype=DTYPE)[i]) for i in range(L)]
    assert val <= min(vertices) + 1e-9
    assert val <= tb.theory.selection_objective(covs, target, torch.full((L,), 1 / L, dtype=DTYPE)) + 1e-9
    best, best_val = _brute_force(covs, target)
    assert val == pytest.approx(best_val, abs=1e-8)
    assert torch.allclose(pi, best, atol=1e-4)


def _random_selection_instance(seed):
    """Random QP instance: d in 3..10, 2..6 tasks, some rotated, rank-deficient, duplicated
    or mixtures of earlier tasks (so Q is often singular), and a random definite target."""
    rng = np.random.default_rng(seed)
    d, n_tasks = int(rng.integers(3, 11)), int(rng.integers(2, 7))
    covs = []
    for _ in range(n_tasks):
        kind = rng.integers(0, 5)
        if covs and kind == 0:  # an exact duplicate
            covs.append(covs[rng.integers(len(covs))].clone())
            continue
        if len(covs) >= 2 and kind == 1:  # a mixture of two earlier tasks
            i, j = rng.choice(len(covs), 2, replace=False)
            t = rng.uniform()
            covs.append(t * covs[i] + (1 - t) * covs[j])
            continue
        lam = rng.exponential(size=d) + 0.01
        if kind == 2:  # rank-deficient
            lam[rng.choice(d, int(rng.integers(1, d)), replace=False)] = 0
        cov = torch.diag(torch.tensor(lam, dtype=DTYPE))
        covs.append(tb.rotate(cov, seed=int(rng.integers(1 << 30))) if rng.uniform() < 0.6 else cov)
    target = torch.diag(torch.tensor(rng.exponential(size=d) + 0.1, dtype=DTYPE))
    return covs, tb.rotate(target, seed=int(rng.integers(1 << 30))) if rng.uniform() < 0.7 else target


def _exact_selection(covs, target, linear=None):
    """Exact minimum of ``||e − Aπ||² + linearᵀπ`` on the simplex by active-set enumeration.

    In numpy; A's columns are vec(Σ⁻¹Λ_ℓ), e = vec(I). A vertex of the optimal set has a
    support on which the equality-constrained KKT system is non-singular, so the best feasible
    support solution over all supports is optimal (a singular support only adds feasible
    candidates). Returns (value, argmin, A, e).
    """
    inv = np.linalg.inv(target.numpy())
    A = np.stack([(inv @ c.numpy()).ravel() for c in covs], 1)
    e, n_tasks = np.eye(len(inv)).ravel(), A.shape[1]
    linear = np.zeros(n_tasks) if linear is None else np.asarray(linear, dtype=float)
    best, arg = np.inf, None
    for size in range(1, n_tasks + 1):
        for support in itertools.combinations(range(n_tasks), size):
            As = A[:, support]
            kkt = np.block([[2 * As.T @ As, np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            rhs = np.append(2 * As.T @ e - linear[list(support)], 1.0)
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if (sol < -1e-12).any():
                continue
            pi = np.zeros(n_tasks)
            pi[list(support)] = sol.clip(min=0) / sol.clip(min=0).sum()
            value = ((e - A @ pi) ** 2).sum() + linear @ pi
            if value < best:
                best, arg = value, pi
    return best, arg, A, e


def test_task_selection_matches_active_set_enumeration_on_random_instances():
    """500 random instances (the old "iterates stopped moving" rule failed 7 of these)."""
    singular = 0
    for seed in range(500):
        covs, target = _random_selection_instance(seed)
        best, _, A, e = _exact_selection(covs, target)
        pi = tb.theory.task_selection(covs, target).numpy()
        assert (pi >= 0).all() and pi.sum() == pytest.approx(1.0, abs=1e-12)
        gap = ((e - A @ pi) ** 2).sum() - best
        assert gap <= 1e-9 * max(best, 1.0), (seed, gap)
        singular += np.linalg.matrix_rank(A) < A.shape[1]
    assert singular > 100  # the singular-Q case is well represented


def test_task_selection_warns_when_not_converged():
    target = tb.power_law(6, 1.0)
    covs = [tb.power_law(6, 0.5), tb.isotropic(6)]  # optimum at a vertex, not the affine minimiser
    with pytest.warns(RuntimeWarning, match="KKT residual"):
        tb.theory.task_selection(covs, target, n_iter=1)
    pi = tb.theory.task_selection(covs, target)
    assert pi.tolist() == pytest.approx([1.0, 0.0], abs=1e-12)


def _chapter7_kinds(d=10, alpha=1.0):
    """Chapter 7's four task kinds (Q has rank 3 of 4) and its power-law target."""
    kinds = tb.task_kinds(d, d // 5, 4 * d // 5, 0.5, 0.05)
    return list(kinds.values()), [i for i, k in enumerate(kinds) if k.startswith("hard")], \
        tb.power_law(d, alpha)


def test_optimal_face_of_chapter7_kinds_is_a_segment_of_minimisers():
    covs, _, target = _chapter7_kinds()
    face = tb.theory.optimal_face(covs, target)
    best, _, _, _ = _exact_selection(covs, target)
    assert face.shape == (2, 4)  # a segment: the QP does not fix π
    assert (face >= 0).all() and torch.allclose(face.sum(1), torch.ones(2, dtype=DTYPE))
    for vertex in face:
        assert tb.theory.selection_objective(covs, target, vertex) == pytest.approx(best, rel=1e-9)
        assert (vertex == 0).sum() >= 1  # a vertex of the face lies on the simplex's boundary
    mid = face.mean(0)  # and the whole segment is optimal
    assert tb.theory.selection_objective(covs, target, mid) == pytest.approx(best, rel=1e-9)


def test_selection_mass_range_matches_perturbed_exact_solves():
    """Chapter 7 at d = 10, α = 1: hard-task mass over the optimal set is [0.535, 0.680].

    Independent check: the exact enumeration of min f(π) ∓ t·(hard mass) with t → 0 picks the
    optimal point with the most / least hard mass (error O(t)).
    """
    covs, hard, target = _chapter7_kinds()
    low, high = tb.theory.selection_mass_range(covs, target, hard)
    tilt = np.isin(np.arange(4), hard) * 1e-7
    _, arg_max, _, _ = _exact_selection(covs, target, linear=-tilt)
    _, arg_min, _, _ = _exact_selection(covs, target, linear=tilt)
    assert high == pytest.approx(arg_max[hard].sum(), abs=1e-5)
    assert low == pytest.approx(arg_min[hard].sum(), abs=1e-5)
    assert (round(low, 3), round(high, 3)) == (0.535, 0.68)
    with pytest.raises(ValueError, match="tasks must be"):
        tb.theory.selection_mass_range(covs, target, [4])


def test_optimal_face_is_one_point_when_q_is_definite_or_the_face_is_a_vertex():
    d = 5
    covs = [tb.rotate(tb.power_law(d, a), seed=i) for i, a in enumerate((0.0, 0.7, 1.5))]
    target = tb.rotate(tb.power_law(d, 1.0), seed=7)
    face = tb.theory.optimal_face(covs, target)
    assert face.shape == (1, 3) and torch.allclose(face[0], tb.theory.task_selection(covs, target))
    covs, hard, _ = _chapter7_kinds()
    assert tb.theory.optimal_face(covs, tb.power_law(10, 2.0)).shape[0] == 1  # singular Q, one point
    assert tb.theory.selection_mass_range(covs, tb.power_law(10, 2.0), hard) == pytest.approx((1.0, 1.0))


def _eig_mc(cov, m, n_prompts, seed):
    """Eigenvalues (n_prompts, d) of Ŝ_m = XᵀX/m for float64 test prompts x ~ N(0, cov)."""
    out = []
    for step, start in enumerate(range(0, n_prompts, 5000)):
        X = tb.RegressionTask(cov).sample(m, min(5000, n_prompts - start), seed=seed, step=step,
                                          split="eval", dtype=DTYPE).X
        out.append(torch.linalg.eigvalsh(X.transpose(1, 2) @ X / m))
    return torch.cat(out)


def test_mp_edges_and_density_integrate_to_the_law():
    assert tb.theory.mp_edges(0.25) == pytest.approx((0.25, 2.25))
    for ratio in (0.25, 1.0, 4.0):
        low, high = tb.theory.mp_edges(ratio)
        x = torch.linspace(low, high, 400_001, dtype=DTYPE)
        dens = tb.theory.mp_density(x, ratio)
        assert torch.trapezoid(dens, x).item() == pytest.approx(min(1, 1 / ratio), abs=2e-3)
        assert torch.trapezoid(x * dens, x).item() == pytest.approx(1.0, abs=1e-3)  # E tr Ŝ/d
        assert torch.trapezoid(x ** 2 * dens, x).item() == pytest.approx(1 + ratio, abs=1e-3)
    assert tb.theory.mp_density(torch.tensor([0.1, 3.0]), 0.25).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="ratio must be"):
        tb.theory.mp_edges(0.0)


def test_silverstein_law_matches_mp_and_free_moments():
    from ttsbook.theory.finite import _silverstein_density, _spectral_quadrature
    x = np.linspace(0.05, 3.0, 50)
    assert np.allclose(_silverstein_density(x, np.array([1.0]), np.array([1.0]), 0.5),
                       tb.theory.mp_density(torch.as_tensor(x), 0.5).numpy(), atol=1e-9)
    d, m = 10, 40
    sigma = tb.rotate(tb.power_law(d, 1.0), seed=1)
    lam, weight = _spectral_quadrature(sigma, m)
    t1, t2, t3 = [torch.trace(torch.linalg.matrix_power(sigma, j)).item() / d for j in (1, 2, 3)]
    g = d / m  # moments of the free multiplicative convolution of Σ's spectrum with MP(γ)
    expected = [1.0, t1, t2 + g * t1 ** 2, t3 + 3 * g * t1 * t2 + g ** 2 * t1 ** 3]
    for j, value in enumerate(expected):
        assert (weight * lam ** j).sum().item() == pytest.approx(value, rel=1e-4)


@pytest.mark.parametrize("d, m, k_max", [(10, 40, 6), (10, 160, 6), (20, 40, 12), (20, 160, 12)])
def test_finite_prompt_error_isotropic_matches_monte_carlo(d, m, k_max):
    """Within 3% over the range the docstring claims (the population law is 1e-7 off at k=12)."""
    sigma, n = 2.0 * tb.isotropic(d), 20  # a scaled Σ = σI, with c chosen so cσ = n/(n+d+1)
    c = n / (n + d + 1) / 2
    lam = _eig_mc(sigma, m, 20_000 if d == 10 else 10_000, seed=3)
    ks = torch.arange(k_max + 1, dtype=DTYPE)
    mc = ((1 - c * lam[:, None, :]) ** (2 * ks[None, :, None])).mean((0, 2))
    pred = tb.theory.finite_prompt_error(-c * torch.eye(d, dtype=DTYPE), sigma, m, k_max)
    assert pred[0] == 1.0
    assert torch.allclose(pred, mc, rtol=0.03), (pred / mc).tolist()


def test_finite_prompt_error_matches_pseudo_newton_and_general_sigma():
    d, m, n, K = 10, 40, 20, 4
    eye = tb.isotropic(d)
    prompts = tb.RegressionTask(eye).sample(m, 20_000, seed=4, split="eval", dtype=DTYPE)
    mc = tb.prompt_errors(tb.PseudoNewton.trained(eye, n), prompts, K).mean(0)
    pred = tb.theory.finite_prompt_error(tb.theory.pseudo_newton_v(eye, n), eye, m, K)
    assert torch.allclose(pred[1:], mc, rtol=0.03)
    d, m, c = 20, 320, 0.3  # a non-isotropic Σ: the limiting law, O(1/d) off
    sigma = tb.rotate(tb.power_law(d, 0.5), seed=0)
    lam = _eig_mc(sigma, m, 5000, seed=5)
    ks = torch.arange(7, dtype=DTYPE)
    mc = ((1 - c * lam[:, None, :]) ** (2 * ks[None, :, None])).mean((0, 2))
    pred = tb.theory.finite_prompt_error(-c * torch.eye(d, dtype=DTYPE), sigma, m, 6)
    assert torch.allclose(pred, mc, rtol=0.03), (pred / mc).tolist()
    with pytest.raises(ValueError, match="multiple of the identity"):
        tb.theory.finite_prompt_error(tb.theory.pseudo_newton_v(sigma, n), sigma, m, 2)


def test_divergence_threshold_and_divergent_fraction():
    d, m = 20, 40
    n_crit = tb.theory.divergence_threshold(d, m)
    high = tb.theory.mp_edges(d / m)[1]
    assert n_crit / (n_crit + d + 1) * high == pytest.approx(2.0)
    assert tb.theory.divergence_threshold(10, 58) < float("inf") == tb.theory.divergence_threshold(10, 59)  # m ≈ 5.83d
    fractions = [tb.experiments.divergent_fraction(d, n, m, n_prompts=4000, seed=0) for n in (20, 100, 1000)]
    assert fractions[0] == 0.0
    assert fractions[1] == pytest.approx(0.82, abs=0.02)  # science.md: independent MC, 82%
    assert fractions[2] > 0.995  # and 100% at n = 1000


def test_context_needed_equals_n_star_for_identity_and_is_below_it_otherwise():
    d, eps = 5, 1e-2
    for k in (1, 3):
        n_iso = tb.theory.context_needed(tb.isotropic(d), k, eps)
        assert n_iso == pytest.approx(tb.theory.n_star(d, k, eps).item(), rel=1e-6)
    skew = tb.power_law(d, 1.0)
    n_skew = tb.theory.context_needed(skew, 2, eps)
    err = tb.theory.population_error(tb.theory.pseudo_newton_v(skew, n_skew), skew, 2)[2].item()
    assert err == pytest.approx(eps, rel=1e-5)
    assert n_skew < tb.theory.n_star(tb.hardness(skew), 2, eps).item()
    with pytest.raises(ValueError, match="eps"):
        tb.theory.context_needed(skew, 1, 2.0)


def test_prompt_mu_max_matches_eigenvalues_and_population_limit():
    d, n = 4, 10
    skew = tb.power_law(d, 1.0)
    V = tb.theory.pseudo_newton_v(skew, n)
    prompts = tb.RegressionTask(tb.isotropic(d)).sample(3, 5, seed=0, dtype=torch.float64)
    X = prompts.X[2]
    S = X.T @ X / 3
    expected = torch.linalg.eigvals(torch.linalg.solve(tb.theory.gamma(skew, n), S)).real.max()
    assert tb.stopping.prompt_mu_max(V, prompts)[2].item() == pytest.approx(expected.item(), rel=1e-10)
    long = tb.RegressionTask(tb.isotropic(d)).sample(20_000, 2, seed=0, dtype=torch.float64)
    population = tb.theory.mu_spectrum(V, tb.isotropic(d)).max().item()
    assert tb.stopping.prompt_mu_max(V, long).numpy() == pytest.approx([population] * 2, rel=0.05)


def test_mixing_makes_tasks_easier():
    """λ_min is concave, so with equal traces 1/Hard(Σπ Λ) >= Σ π / Hard(Λ): the chapter's argument."""
    covs = list(tb.task_kinds(8, 2, 6, 0.5, 0.05).values())
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        probs = -torch.rand(4, generator=gen, dtype=DTYPE).log()  # a random point of the simplex
        probs = probs / probs.sum()
        mix = sum(p * c for p, c in zip(probs, covs))
        assert 1 / tb.hardness(mix) >= sum(p / tb.hardness(c) for p, c in zip(probs, covs)) - 1e-12


def test_best_mixture_beats_every_candidate():
    d, n, k = 6, 20, 3
    covs = list(tb.task_kinds(d, 2, 5, 0.5, 0.05).values())
    target = tb.power_law(d, 1.0)
    best = tb.theory.best_mixture(covs, target, n, k, iters=300)
    assert best.sum().item() == pytest.approx(1.0) and (best >= 0).all()
    err = lambda p: tb.theory.mixture_error(covs, p, target, n, k)[-1].item()  # noqa: E731
    candidates = [tb.theory.task_selection(covs, target), torch.full((4,), 0.25, dtype=DTYPE)] + \
        [torch.eye(4, dtype=DTYPE)[i] for i in range(4)]
    assert all(err(best) <= err(p) * (1 + 1e-6) for p in candidates)
