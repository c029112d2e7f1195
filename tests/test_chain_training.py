"""The LSA trained on its own chain: theory (ttsbook.theory.chain_training) against Monte Carlo,
against its own leading-order formulas, and against gradient training of the LSA."""
import functools

import pytest
import torch

import ttsbook as tb
from ttsbook import theory
from ttsbook.checks import DTYPE
from ttsbook.lsa import LSA, LSAConfig
from ttsbook.train import Trainer, TrainConfig, cot_loss


def _moments(cov, n, n_draws, seed):
    return tb.RegressionTask(cov).sample(n, n_draws, seed=seed, dtype=DTYPE).moments()[0]


def _missing(eps, n_dims=4):
    """I with the last coordinate scaled by eps: one direction (nearly) missing."""
    lam = torch.ones(n_dims, dtype=DTYPE)
    lam[-1] = eps
    return torch.diag(lam)


def _rel(a, b):
    return (torch.linalg.norm(a - b) / torch.linalg.norm(b)).item()


def test_one_pass_gives_the_paper_optimum_for_both_trainings():
    cov, n = tb.power_law(5, 1.0, normalise=False), 10
    S, G = _moments(cov, n, 20_000, seed=3), theory.pseudo_newton_v(cov, n)
    assert _rel(theory.chain_optimum(S, 1, G), G) < 0.01
    assert _rel(theory.chain_fixed_point(S, 1, G), G) < 0.01
    assert _rel(theory.chain_optimum(S, 4, G), G) > 0.02       # the chain does move V


def test_chain_errors_match_the_self_fed_lsa_on_prompts():
    """Exact-in-w per-prompt errors against the LSA's own iterates: the same 2,000 prompts'
    features (m = 40: no prompt dominates the mean), each with 50 task vectors w."""
    cov, n, m, K, reps = tb.power_law(4, 1.0, normalise=False), 10, 40, 5, 50
    X = tb.RegressionTask(cov).sample(m, 2000, seed=7, dtype=DTYPE).X
    w = torch.randn(2000 * reps, 4, generator=torch.Generator().manual_seed(8), dtype=DTYPE)
    Xr = X.repeat_interleave(reps, dim=0)
    prompts = tb.Prompts(Xr, torch.einsum("bnd,bd->bn", Xr, w), w)
    V = theory.chain_optimum(_moments(cov, n, 5000, seed=1), 3, theory.pseudo_newton_v(cov, n))
    model = LSA(LSAConfig(n_dims=4)).double()
    model.V31.data.copy_(V)
    with torch.no_grad():
        mc = prompts.errors(model.predict(prompts, K)).mean(0)
    S = X.transpose(1, 2) @ X / m
    exact = theory.chain_errors(V, S, K)[:, 1:].mean(0)
    torch.testing.assert_close(mc, exact, rtol=0.03, atol=0)
    assert theory.chain_objective(V, S, K).item() == pytest.approx(exact.mean().item(),
                                                                   rel=1e-12)


def test_chain_errors_agree_with_the_spectral_per_prompt_errors():
    """Matrix powers (differentiable, any V) against theory.tail's eigen-decomposition."""
    cov, n = tb.power_law(4, 1.0, normalise=False), 10
    S = _moments(cov, 20, 300, seed=2)
    V = theory.pseudo_newton_v(cov, n)
    spectral = theory.spectral_errors(theory.prompt_spectra(V.numpy(), S.numpy()), 6)
    torch.testing.assert_close(theory.chain_errors(V, S, 6), torch.as_tensor(spectral),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_missing_direction_step_is_the_leading_order(stop_gradient):
    """As ε → 0 the missing direction's entry of the searched optimum tends to the formula
    (same draws; what remains is O(ε) and the draws of that direction's features)."""
    cov, n, K = _missing(1e-3), 20, 2
    S, G = _moments(cov, n, 10_000, seed=5), theory.pseudo_newton_v(cov, n)
    search = theory.chain_fixed_point if stop_gradient else theory.chain_optimum
    V = search(S, K, G)
    v = theory.missing_direction_step(V[:-1, :-1], S[:, :-1, :-1], n, K,
                                      stop_gradient=stop_gradient)
    assert V[-1, -1].item() == pytest.approx(v, rel=0.02)
    assert abs(v) > 1.2 * abs(G[-1, -1].item())                 # far from −Γ⁻¹'s −n/tr Λ


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_missing_direction_limit_is_the_solved_block_case(stop_gradient):
    lam_s = torch.diag(torch.tensor([1.0, 2.0, 0.5], dtype=DTYPE))
    for K in (1, 3, 8):
        v = theory.missing_direction_step(-torch.linalg.inv(lam_s), lam_s, 30, K,
                                          stop_gradient=stop_gradient)
        limit = theory.missing_direction_limit(30, 3, 3.5, K, stop_gradient=stop_gradient)
        assert v == pytest.approx(limit, rel=1e-12)
    assert limit == pytest.approx(-30 / 3.5 * (1 + 7 * 0.9 if stop_gradient else 4.5 - 0.35))


@pytest.mark.parametrize("through_feedback", [True, False])
def test_gradient_training_reaches_the_theory(through_feedback):
    """Adam on cot_loss (K = 4) lands on the chain optimum (through the feedback) or on the
    stop-gradient fixed point, both far from −Γ⁻¹ in the missing direction."""
    cov, n, K = _missing(0.05), 20, 4
    S, G = _moments(cov, n, 20_000, seed=99), theory.pseudo_newton_v(cov, n)
    want = (theory.chain_optimum if through_feedback else theory.chain_fixed_point)(S, K, G)
    model = LSA(LSAConfig(n_dims=4))
    config = TrainConfig(steps=1500, batch_size=512, lr=0.05, warmup=None)
    loss = functools.partial(cot_loss, n_steps=K, through_feedback=through_feedback)
    Trainer(model, config, "cpu", threads=1).fit(tb.RegressionTask(cov), n, loss)
    got = model.V31.detach().to(DTYPE)
    assert _rel(got, want) < 0.03
    assert _rel(got, G) > 0.3


def test_stop_gradient_feeds_the_same_iterates_back():
    cov, n = tb.power_law(3, 1.0), 8
    prompts = tb.RegressionTask(cov).sample(n, 16, seed=0)
    model = LSA(LSAConfig(n_dims=3, init_std=0.3))
    torch.testing.assert_close(model.predict(prompts, 4),
                               model.predict(prompts, 4, feedback_grad=False))
    direct = ((model.predict(prompts, 1)[:, 0] - prompts.w) ** 2).mean()
    torch.testing.assert_close(cot_loss(model, prompts, 1), direct)


def test_bad_input_is_named():
    cov = tb.power_law(3, 1.0)
    S = _moments(cov, 5, 10, seed=0)
    with pytest.raises(ValueError, match="start must be a diagonal V"):
        theory.chain_optimum(S, 2, -torch.ones(3, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="moments must be"):
        theory.chain_errors(-torch.eye(3, dtype=DTYPE), torch.ones(2, 3, 4), 2)
    with pytest.raises(tb.BadValue, match="n_steps"):
        theory.chain_objective(-torch.eye(3, dtype=DTYPE), S, 0)
    with pytest.raises(tb.BadValue, match="through_feedback"):
        cot_loss(tb.GPT(tb.preset("cpu", n_dims=3)), tb.RegressionTask(cov).sample(5, 2), 2,
                 through_feedback=True)
