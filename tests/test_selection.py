"""ttsbook.selection: task kinds, mixtures compared by their true error, the hardness sweep."""
import pytest
import torch

import ttsbook as tb
from ttsbook.selection import KINDS, one_hot
from ttsbook.spectra import DTYPE


def test_skill_task_is_two_level_with_trace_d_and_known_hardness():
    d, s, eps = 6, 2, 0.1
    cov = tb.skill_task(d, s, eps)
    lam = torch.diagonal(cov)
    assert torch.trace(cov).item() == pytest.approx(d)
    assert torch.allclose(lam[:s] * eps, lam[s:2 * s])  # strong : weak = 1 : eps
    assert tb.hardness(cov) == pytest.approx((s + (d - s) * eps) / eps)
    assert torch.equal(tb.skill_task(d, d, 0.3), tb.isotropic(d))  # every skill strong: I_d
    for bad in [dict(n_skills=0, eps=0.1), dict(n_skills=7, eps=0.1), dict(n_skills=2, eps=0.0)]:
        with pytest.raises(ValueError):
            tb.skill_task(d, **bad)


def test_task_kinds_order_hardness():
    kinds = tb.task_kinds(10, 2, 8, 0.5, 0.05)
    assert tuple(kinds) == KINDS
    hard = {k: tb.hardness(c) for k, c in kinds.items()}
    assert hard["hard-few"] > hard["easy-few"] and hard["hard-many"] > hard["easy-many"]
    with pytest.raises(ValueError, match="few must be"):
        tb.task_kinds(10, 8, 2, 0.5, 0.05)
    with pytest.raises(ValueError, match="eps_hard"):
        tb.task_kinds(10, 2, 8, 0.05, 0.5)


def test_mixing_makes_tasks_easier():
    """λ_min is concave, so with equal traces 1/Hard(Σπ Λ) >= Σ π / Hard(Λ): the chapter's argument."""
    covs = list(tb.task_kinds(8, 2, 6, 0.5, 0.05).values())
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        probs = -torch.rand(4, generator=gen, dtype=DTYPE).log()  # a random point of the simplex
        probs = probs / probs.sum()
        mix = sum(p * c for p, c in zip(probs, covs))
        assert 1 / tb.hardness(mix) >= sum(p / tb.hardness(c) for p, c in zip(probs, covs)) - 1e-12


def test_compare_mixtures_single_task_is_pseudo_newton():
    d, n, k = 6, 15, 4
    covs = list(tb.task_kinds(d, 2, 5, 0.5, 0.05).values())
    target = tb.power_law(d, 1.0)
    frame = tb.compare_mixtures(covs, {"one": one_hot(4, 2), "uniform": torch.full((4,), 0.25)}, target, n, k)
    expected = tb.population_error(tb.pseudo_newton_v(covs[2], n), target, k)[-1].item()
    assert frame.loc[0, "error"] == pytest.approx(expected, rel=1e-10)
    assert frame.loc[0, "hard_mass"] == 1.0 and frame.loc[1, "hard_mass"] == 0.5  # the two hard kinds
    assert frame.loc[1, "objective"] == pytest.approx(
        tb.selection_objective(covs, target, torch.full((4,), 0.25)))


def test_best_mixture_beats_every_candidate():
    d, n, k = 6, 20, 3
    covs = list(tb.task_kinds(d, 2, 5, 0.5, 0.05).values())
    target = tb.power_law(d, 1.0)
    best = tb.best_mixture(covs, target, n, k, iters=300)
    assert best.sum().item() == pytest.approx(1.0) and (best >= 0).all()
    err = lambda p: tb.mixture_error(covs, p, target, n, k)[-1].item()  # noqa: E731
    candidates = [tb.task_selection(covs, target), torch.full((4,), 0.25, dtype=DTYPE)] + \
        [one_hot(4, i) for i in range(4)]
    assert all(err(best) <= err(p) * (1 + 1e-6) for p in candidates)


def test_hardness_sweep_matches_theory_and_bound():
    families = {"iso": [tb.isotropic(4)], "power": [tb.power_law(4, 1.5)]}
    sweep = tb.hardness_sweep(families, n=10, n_steps=2, m=2000, n_prompts=2000, seed=1)
    assert list(sweep["family"]) == ["iso", "power"]
    assert (sweep["theory"] <= sweep["bound"] * (1 + 1e-12)).all()
    assert sweep.loc[0, "theory"] == pytest.approx(sweep.loc[0, "bound"])  # equality for Λ = I
    assert ((sweep["mean"] - sweep["theory"]).abs() / sweep["theory"] < 0.1).all()  # m finite: O(1/m)


def test_train_on_mixture_reaches_mixture_optimum():
    covs = [tb.skill_task(3, 1, 0.2), tb.isotropic(3)]
    probs = torch.tensor([0.3, 0.7], dtype=DTYPE)
    config = tb.TrainConfig(steps=200, batch_size=128, lr=0.05, seed=2)
    model = tb.train_on_mixture(covs, probs, 8, config, device="cpu")
    V = tb.mixture_optimum(covs, probs, 8)
    assert torch.linalg.norm(model.V31.detach().double() - V) / torch.linalg.norm(V) < 0.05
