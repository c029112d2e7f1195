"""Stopping and damping rules (ttsbook.stopping): they see only the prompt and the iterates."""
import pytest
import torch

import ttsbook as tb
from ttsbook import stopping as st
from ttsbook.checks import DTYPE

D, M = 8, 16


def _prompts(n_prompts=300, sigma=0.0, m=M, seed=0):
    task = tb.RegressionTask(tb.isotropic(D), noise_std=sigma)
    return task.sample(m, n_prompts, seed=seed, split="eval", dtype=DTYPE)


class _Blind:
    """Wraps a predictor and fails if anything reads the task vectors w."""

    def __init__(self, inner):
        self.inner = inner

    def predict(self, prompts, n_steps):
        hidden = tb.Prompts(prompts.X, prompts.y, torch.full_like(prompts.w, float("nan")))
        return self.inner.predict(tb.Prompts(hidden.X, hidden.y, torch.zeros_like(prompts.w)), n_steps)


def test_every_chain_is_the_one_pseudo_newton_chain():
    """PseudoNewton, damped CoT at η = 1 and a noiseless parallel chain on all examples run
    the same chain ``ŵ ← ŵ + ηV(Ŝŵ − b)``: ``predictors.pseudo_newton_chain``."""
    from ttsbook import parallel
    from ttsbook.predictors import pseudo_newton_chain
    prompts = _prompts(20, sigma=0.1)
    pn = tb.PseudoNewton.trained(tb.power_law(D, 1.0), 12)
    chain = pseudo_newton_chain(pn.V, *prompts.moments(), 6)
    assert torch.equal(pn.predict(prompts, 6), chain)
    assert torch.equal(st.damped_iterates(pn.V, prompts, 6, 1.0), chain)
    half = st.damped_iterates(pn.V, prompts, 6, 0.5)
    assert torch.equal(half, pseudo_newton_chain(pn.V, *prompts.moments(), 6, eta=0.5))
    assert not torch.allclose(half, chain)
    chains = parallel.run_chains(pn.V, prompts, 3, 6)            # (B, 3, 6, d), all alike
    assert torch.allclose(chains, chain[:, None].expand_as(chains), rtol=1e-12, atol=1e-12)
    noisy = pseudo_newton_chain(pn.V, *prompts.moments(), 6, noise_std=0.3,
                                generator=torch.Generator().manual_seed(0))
    assert (noisy - chain).abs().max() > 0.1                     # the noise is added
    assert pseudo_newton_chain(pn.V, *prompts.moments(), 0).shape == (20, 0, D)


def test_residual_stop_counts_the_stalled_pass_on_residuals_from_zero():
    r = torch.tensor([[4.0, 2.0, 1.9, 1.0]])                      # r_0 .. r_3
    assert st.residual_stop(r, rtol=0.1).item() == 2              # pass 2 fell by < 10%
    assert st.residual_stop(r[:, 1:], rtol=0.1).item() == 1       # from r_1: ŵ_1 is kept
    prompts = _prompts(5)
    W = tb.PseudoNewton.trained(tb.isotropic(D), 10).predict(prompts, 3)
    full = st.prompt_residuals(prompts, W, from_zero=True)
    assert torch.allclose(full[:, 1:], st.prompt_residuals(prompts, W), rtol=1e-12)
    assert torch.allclose(full[:, 0], (prompts.y ** 2).mean(1))


def test_residuals_match_their_definition_and_never_read_w():
    prompts = _prompts(5)
    W = tb.PseudoNewton.trained(tb.isotropic(D), 10).predict(prompts, 4)
    r = st.prompt_residuals(prompts, W)
    X, y = prompts.X[2], prompts.y[2]
    assert r[2, 3].item() == pytest.approx(((y - X @ W[2, 3]) ** 2).mean().item())
    nan_w = tb.Prompts(prompts.X, prompts.y, prompts.w * float("nan"))
    with pytest.raises(ValueError, match="prompts.w holds NaN"):
        st.prompt_residuals(nan_w, W)                     # w is validated, never used
    assert torch.equal(st.prompt_residuals(tb.Prompts(prompts.X, prompts.y, 0 * prompts.w), W), r)


def test_residual_stop_is_the_residual_minimum_for_pseudo_newton():
    # the residual of a pseudo-Newton chain is convex in k: first stop = global minimum
    prompts = _prompts(400)
    W = tb.PseudoNewton.trained(tb.isotropic(D), 200).predict(prompts, 30)   # overthinks
    r = st.prompt_residuals(prompts, W)
    k = st.residual_stop(r)
    assert torch.equal(k, r.argmin(1) + 1)
    assert 1 < k.double().mean() < 30
    assert torch.equal(st.residual_stop(torch.tensor([[3.0, 2.0, 2.5, 1.0]])), torch.tensor([2]))
    assert torch.equal(st.residual_stop(torch.tensor([[3.0, 2.0, 1.9]]), rtol=0.1), torch.tensor([2]))


def test_top_eigenvalue_bound_is_an_upper_bound_within_d_to_the_1_over_p():
    prompts = _prompts(200)
    V = tb.theory.pseudo_newton_v(tb.power_law(D, 1.0), 30)
    true = tb.stopping.prompt_mu_max(V, prompts)
    for q in (1, 3):
        bound = st.top_eigenvalue_bound(V, prompts, n_squarings=q)
        p = 2 ** (q + 1)
        assert (bound >= true * (1 - 1e-9)).all() and (bound <= true * D ** (1 / p) * (1 + 1e-9)).all()


def test_damped_chain_cannot_diverge_where_the_plain_one_does():
    prompts = _prompts(300)
    pn = tb.PseudoNewton.trained(tb.isotropic(D), 1000)      # Γ⁻¹Ŝ_m passes 2 on most prompts
    plain = tb.prompt_errors(pn, prompts, 60)[:, -1]
    assert (tb.stopping.prompt_mu_max(pn.V, prompts) > 2).double().mean() > 0.5 and plain.median() > 1e3
    for theta in (0.5, 1.0):
        eta = st.damping(st.top_eigenvalue_bound(pn.V, prompts), theta)
        assert (eta * tb.stopping.prompt_mu_max(pn.V, prompts) < 2).all()
        errs = ((st.damped_iterates(pn.V, prompts, 60, eta) - prompts.w[:, None]) ** 2).mean(-1)
        assert (torch.diff(errs, dim=1) < 1e-12).all()       # θ <= 1: monotone too
        assert errs[:, -1].median() < 1e-2 and (errs[:, -1] < errs[:, 0]).all()


def test_relax_is_exact_for_an_affine_chain_even_with_noise():
    prompts = _prompts(50, sigma=0.3)
    pn = tb.PseudoNewton.trained(tb.isotropic(D), 1000)
    eta = torch.linspace(0.2, 1.0, 50, dtype=DTYPE)
    W = pn.predict(prompts, 12)
    direct = st.damped_iterates(pn.V, prompts, 12, eta)
    for K in (1, 5, 12):
        assert torch.allclose(st.relax(W[:, :K], eta), direct[:, K - 1], rtol=1e-8, atol=1e-10)


def test_iterate_contraction_recovers_the_top_eigenvalue_of_a_diverging_chain():
    prompts = _prompts(200)
    pn = tb.PseudoNewton.trained(tb.isotropic(D), 1000)
    mu = tb.stopping.prompt_mu_max(pn.V, prompts)
    nu = st.iterate_contraction(pn.predict(prompts, 40))
    diverging = mu > 2.2                                      # the top mode dominates by k = 40
    assert diverging.sum() > 20
    assert torch.allclose(nu[diverging], mu[diverging], rtol=1e-3)


def test_holdout_curve_uses_only_the_prompt_and_picks_a_good_k():
    prompts = _prompts(300)
    pn = tb.PseudoNewton.trained(tb.isotropic(D), 1000)
    h = st.holdout_curve(pn, prompts, 20, n_folds=4)
    assert torch.equal(h, st.holdout_curve(_Blind(pn), prompts, 20, n_folds=4))
    assert h.shape == (300, 20) and (h >= 0).all()
    err = tb.prompt_errors(pn, prompts, 20)
    chosen = err.gather(1, h.argmin(1, keepdim=True))[:, 0]
    assert chosen.mean() < err.mean(0).min()                 # beats every fixed k


def test_compare_rules_frame_and_the_oracle_bound():
    prompts = _prompts(400)
    pn = tb.PseudoNewton.trained(tb.isotropic(D), 1000)
    df = st.compare_rules(pn, prompts, [1, 3, 10], "short prompt", n_folds=4, n_boot=200)
    assert list(df.columns) == ["setting", "rule", "K_max", "mean", "ci_low", "ci_high",
                                "median", "mean_k"]
    assert set(df.rule) == {"fixed k", "oracle", *st.RULES}
    assert df[df.rule == "fixed k"].K_max.tolist() == list(range(1, 11))
    pivot = df[df.rule != "fixed k"].pivot(index="K_max", columns="rule", values="mean")
    for rule in ("residual stop", "hold-out"):
        assert (pivot["oracle"] <= pivot[rule] + 1e-12).all()   # a stopping rule can't beat it
        assert pivot[rule].is_monotonic_decreasing               # more budget never hurts here
    blind = st.compare_rules(_Blind(pn), prompts, [1, 3, 10], "short prompt", n_folds=4,
                             n_boot=200, V=pn.V)
    assert blind[["mean", "median"]].equals(df[["mean", "median"]])
    errors = st.rule_errors(pn, prompts, [1, 3, 10], n_folds=4)
    again = st.rules_frame(errors, [1, 3, 10], "short prompt", n_boot=200)
    assert again.equals(df)


def test_black_box_damping_is_used_without_v():
    prompts = _prompts(200)
    pn = tb.PseudoNewton.trained(tb.isotropic(D), 1000)
    errs = st.rule_errors(_Blind(pn), prompts, [2, 30], n_folds=4)
    fixed, _ = errs["fixed k"]
    damped, used = errs["damped"]
    assert damped[:, 1].median() < 1e-2 < fixed[:, -1].median()
    assert (used == torch.tensor([2, 30])).all()


def test_black_box_damping_stays_finite_when_the_plain_chain_overflows():
    # A skills gap (one rotated skill at 0.02, n = 60, Σ = I, m = 60): the plain chain
    # overflows before k = 1024; the binomial sum used to cancel catastrophically (2e49).
    d = 12
    pn = tb.PseudoNewton.trained(tb.rotate(tb.missing_skills(d, [0], 0.02), seed=0), 60)
    prompts = tb.RegressionTask(tb.isotropic(d)).sample(60, 100, seed=1, split="eval",
                                                        dtype=DTYPE)
    W = pn.predict(prompts, 1024)
    assert not torch.isfinite(W[:, -1]).all()
    for K, iterate_tol in ((16, 1e-9), (128, 2e-3), (1024, 2e-3)):
        eta = st.damping(st.iterate_contraction(W[:, :K]), 1.0)
        assert ((eta > 0) & (eta < 1)).all()
        black, exact = st.relax(W[:, :K], eta), st.damped_iterates(pn.V, prompts, K, eta)[:, -1]
        assert torch.isfinite(black).all()
        gap = (black - exact).norm(dim=1) / exact.norm(dim=1)
        assert gap.max() < iterate_tol                          # the iterates
        assert (prompts.errors(black) - prompts.errors(exact)).abs().max() < 1e-6  # the errors
    errs = st.rule_errors(_Blind(pn), prompts, [128, 1024], n_folds=4)   # never raises
    damped, _ = errs["damped"]
    assert torch.isfinite(damped).all() and damped.max() < 1e-5


@pytest.mark.parametrize("call, match", [
    (lambda p, pn: st.compare_rules(pn, p, [0, 3]), r"^n_steps must be an integer >= 1, got 0$"),
    (lambda p, pn: st.compare_rules(pn, p, []), r"^n_steps must list at least one budget K >= 1, got none$"),
    (lambda p, pn: st.compare_rules(pn, p, [2], theta=2.0), r"^theta must be a number > 0 and < 2"),
    (lambda p, pn: st.compare_rules(pn, p, [2], n_folds=1), r"^n_folds must be an integer >= 2"),
    (lambda p, pn: st.holdout_curve(pn, p, 3, n_folds=M + 1), r"^n_folds must be <= m = 16"),
    (lambda p, pn: st.holdout_curve(pn, p, -1), r"^n_steps must be an integer >= 0"),
    (lambda p, pn: st.prompt_residuals(p, torch.zeros(len(p), 3, D + 1)),
     r"^iterates must have shape \(20, K >= 1, 8\)"),
    (lambda p, pn: st.residual_stop(torch.zeros(4)), r"^residuals must have shape \(B, K\)"),
    (lambda p, pn: st.residual_stop(torch.zeros(2, 3), rtol=1.0), r"^rtol must be a number >= 0 and < 1"),
    (lambda p, pn: st.top_eigenvalue_bound(torch.eye(3), p), r"^V must have shape \(8, 8\)"),
    (lambda p, pn: st.top_eigenvalue_bound(pn.V, p, n_squarings=0), r"^n_squarings must be"),
    (lambda p, pn: st.relax(torch.zeros(20, 3, D), 1.5), r"^eta must lie in \(0, 1\]"),
    (lambda p, pn: st.relax(torch.zeros(20, 3, D), 0.0), r"^eta must lie in \(0, 1\]"),
    (lambda p, pn: st.damping(torch.ones(3), theta=0), r"^theta must be a number > 0"),
    (lambda p, pn: st.iterate_contraction(torch.zeros(20, 1, D)), r"^iterates must have shape \(B, K >= 2"),
    (lambda p, pn: st.holdout_curve(pn, tb.Prompts(p.X[:, :1], p.y[:, :1], p.w), 3, n_folds=2),
     r"^n_folds must be <= m = 1"),
])
def test_bad_inputs_are_rejected_in_one_line(call, match):
    prompts = _prompts(20)
    pn = tb.PseudoNewton.trained(tb.isotropic(D), 10)
    with pytest.raises(ValueError, match=match) as err:
        call(prompts, pn)
    assert "\n" not in str(err.value)
