"""Parallel test-time compute: chains, aggregation, the 1/N law, allocation, budget forcing."""
import pytest
import torch

import ttsbook as tb
from ttsbook import parallel as P
from ttsbook import stopping

D, N_TRAIN, M = 6, 20, 24


@pytest.fixture(scope="module")
def setup():
    iso = tb.isotropic(D)
    prompts = tb.RegressionTask(iso).sample(M, 300, seed=1, split="eval", dtype=torch.float64)
    return tb.theory.pseudo_newton_v(iso, N_TRAIN), prompts


def test_noiseless_chains_on_all_examples_are_the_pseudo_newton_chain(setup):
    V, prompts = setup
    w_hat = P.run_chains(V, prompts, 3, 5)
    assert w_hat.shape == (300, 3, 5, D)
    reference = tb.PseudoNewton(V).predict(prompts, 5)
    for c in range(3):
        torch.testing.assert_close(w_hat[:, c], reference)


def test_chains_are_a_pure_function_of_the_seed(setup):
    V, prompts = setup
    a = P.run_chains(V, prompts, 4, 3, data="bootstrap", noise_std=0.1, seed=7)
    b = P.run_chains(V, prompts, 4, 3, data="bootstrap", noise_std=0.1, seed=7)
    c = P.run_chains(V, prompts, 4, 3, data="bootstrap", noise_std=0.1, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a[:, 0] - a[:, 1]).abs().max() > 0  # the chains differ


@pytest.mark.parametrize("data, subset", [("subset", 10), ("bootstrap", None)])
def test_data_weights_are_a_subset_or_a_resample(data, subset):
    prompts = tb.RegressionTask(tb.isotropic(2)).sample(12, 50, seed=0)
    a = P._weights(prompts, 5, data, subset, torch.Generator().manual_seed(0))
    assert a.shape == (50, 5, 12)
    torch.testing.assert_close(a.sum(-1), torch.ones(50, 5, dtype=a.dtype))
    counts = a * (subset or 12)
    assert torch.allclose(counts, counts.round())  # whole examples
    if data == "subset":
        assert ((counts == 0) | (counts == 1)).all()


def test_mean_and_best_of_n_aggregation(setup):
    V, prompts = setup
    w_hat = P.run_chains(V, prompts, 8, 4, noise_std=0.3, seed=1)
    torch.testing.assert_close(P.aggregate(prompts, w_hat, "mean"), w_hat.mean(1))
    best = P.aggregate(prompts, w_hat, "best")
    r = prompts.residuals(w_hat)                                   # (B, N, k)
    assert torch.equal(prompts.residuals(best), r.min(1).values)   # the verifier's pick
    # the verifier is right on average: the picked chain beats a random chain
    assert prompts.errors(best).mean() < prompts.errors(w_hat).mean()


def test_residual_is_zero_at_the_true_w(setup):
    _, prompts = setup
    assert prompts.residuals(prompts.w).abs().max() < 1e-20


def test_averaging_closed_form_matches_monte_carlo(setup):
    V, prompts = setup
    w_hat = P.run_chains(V, prompts, 64, 6, noise_std=0.2, seed=3)
    for n_chains in (1, 4, 16):  # 64 chains per prompt: 64/N groups of N
        groups = w_hat.reshape(len(prompts), 64 // n_chains, n_chains, 6, D)
        mc = prompts.errors(groups.mean(2)).mean((0, 1))
        exact = P.averaging_error_given(V, prompts, n_chains, 6, 0.2)[:, 1:].mean(0)
        assert torch.allclose(mc, exact, rtol=0.02), (n_chains, mc, exact)


def test_population_form_is_the_large_m_limit():
    iso = tb.isotropic(D)
    V = tb.theory.pseudo_newton_v(iso, N_TRAIN)
    long = tb.RegressionTask(iso).sample(20_000, 40, seed=2, split="eval", dtype=torch.float64)
    given = P.averaging_error_given(V, long, 3, 5, 0.2).mean(0)
    population = P.averaging_error(V, iso, 3, 5, 0.2)
    assert torch.allclose(given, population, rtol=0.05)
    # the variance term, and only it, shrinks as 1/N
    f = tb.theory.population_error(V, iso, 5)
    torch.testing.assert_close(P.averaging_error(V, iso, 10**9, 5, 0.2), f)


def test_averaging_law_holds_for_subset_chains(setup):
    V, prompts = setup
    w_hat = P.run_chains(V, prompts, 64, 3, data="subset", subset=16, seed=4)
    one = prompts.errors(w_hat).mean((0, 1))
    # err_∞ from the per-prompt mean chain over 64 chains: the law at N = 8
    inf = prompts.errors(w_hat.mean(1)).mean(0)
    err8 = prompts.errors(w_hat[:, :8].mean(1)).mean(0)
    law = P.averaging_law(one, inf, 8)
    assert torch.allclose(err8, law, rtol=0.1), (err8, law)


def test_allocations_and_allocate(setup):
    V, prompts = setup
    assert P.allocations(12) == [(12, 1), (6, 2), (4, 3), (3, 4), (2, 6), (1, 12)]
    assert P.allocations(10, [3, 4]) == [(3, 3), (2, 4)]
    frame = P.allocate(V, prompts, 8, noise_std=0.2, seed=0)
    assert set(frame.columns) == {"N", "k", "passes", "how", "mean", "median"}
    assert len(frame) == 8 and (frame.passes == 8).all()
    best = P.best_allocation(frame)
    assert list(best.how) == ["mean", "best"]
    for _, row in best.iterrows():
        assert row["mean"] == frame[frame.how == row.how]["mean"].min()
    # in distribution and noiseless, one long chain is the best use of the budget
    noiseless = P.best_allocation(P.allocate(V, prompts, 8, hows=["mean"]))
    assert noiseless.k.item() == 8


def test_residual_stop_and_budget_forcing(setup):
    V, prompts = setup
    w_hat = tb.PseudoNewton(V).predict(prompts, 12)
    r = stopping.prompt_residuals(prompts, w_hat, from_zero=True)   # r_0, r_1, …, r_12
    assert torch.equal(r, prompts.residuals(torch.cat([torch.zeros_like(w_hat[:, :1]), w_hat], 1)))
    k_stop = stopping.residual_stop(r, rtol=0.5).clamp(max=12)      # the pass that stalled
    assert ((k_stop >= 1) & (k_stop <= 12)).all()
    b = torch.arange(len(prompts))
    stalled = r[b, k_stop] > 0.5 * r[b, k_stop - 1]
    assert stalled[k_stop < 12].all() and (k_stop < 12).any()        # it stalled there
    before = torch.arange(12)[None, :] < (k_stop[:, None] - 1)
    assert (r[:, 1:13] <= 0.5 * r[:, :12])[before].all()             # not before
    assert torch.equal(P.force(k_stop, 3, 12), (k_stop + 3).clamp(max=12))
    assert P.force(torch.tensor([2]), -5).item() == 1
    frame = P.forcing_errors(prompts, w_hat, k_stop, [0, 4])
    assert list(frame.extra) == [0, 4]
    assert frame["mean"].iloc[1] < frame["mean"].iloc[0]  # "Wait" helps in distribution


@pytest.mark.parametrize("call, arg, match", [
    (lambda V, p: P.run_chains(V, p, 0, 3), "n_chains", "n_chains must be an integer >= 1"),
    (lambda V, p: P.run_chains(V, p, 2, 0), "n_steps", "n_steps must be an integer >= 1"),
    (lambda V, p: P.run_chains(V, p, 2, 3, noise_std=-1), "noise_std", ">= 0"),
    (lambda V, p: P.run_chains(V, p, 2, 3, data="half"), "data", "one of 'all'"),
    (lambda V, p: P.run_chains(V, p, 2, 3, data="subset", subset=M + 1), "subset", "<= m"),
    (lambda V, p: P.run_chains(V[:2, :2], p, 2, 3), "V", "shape"),
    (lambda V, p: P.allocate(V, p, 0), "budget", "budget must be an integer >= 1"),
    (lambda V, p: P.allocate(V, p, 0.5), "budget", "budget must be an integer >= 1"),
    (lambda V, p: P.allocations(8, [16]), "ks", r"in \[1, budget = 8\]"),
    (lambda V, p: P.allocations(8, []), "ks", "at least one"),
    (lambda V, p: P.allocate(V, p, 4, hows=["vote"]), "hows", "one of 'mean'"),
    (lambda V, p: P.aggregate(p, torch.zeros(2, 2, 2, D), "mean"), "w_hat", "shape"),
    (lambda V, p: P.averaging_error(V, tb.isotropic(D), 0, 3, 0.1), "n_chains", ">= 1"),
    (lambda V, p: P.averaging_law(1.0, 0.5, 0), "n_chains", ">= 1"),
    (lambda V, p: P.force(torch.tensor([0]), 1), "k_stop", ">= 1"),
    (lambda V, p: P.force(torch.tensor([1]), 0.5), "extra", "integer"),
    (lambda V, p: P.best_allocation(None, by="max"), "by", "one of"),
])
def test_bad_inputs_get_one_line_errors(setup, call, arg, match):
    V, prompts = setup
    with pytest.raises(tb.BadValue, match=match) as info:
        call(V, prompts)
    assert info.value.arg == arg and "\n" not in str(info.value)
