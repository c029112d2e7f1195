"""ttsbook.experiments: sweeps over n and k, the hardness sweep, mixtures compared, run labels."""
import numpy as np
import pandas as pd
import pytest
import torch

import ttsbook as tb
from ttsbook.checks import DTYPE


def test_population_grid_matches_scaling_law_for_identity():
    d, ns, K = 5, (4, 10, 30), 6
    iso = tb.isotropic(d)
    grid = tb.experiments.population_grid({n: tb.theory.pseudo_newton_v(iso, n) for n in ns}, iso, K)
    assert list(grid.columns) == ["n", "k", "error"] and len(grid) == len(ns) * K
    got_ns, ks, M = tb.experiments.grid_matrix(grid)
    assert got_ns.tolist() == list(ns) and ks.tolist() == list(range(1, K + 1))
    for i, n in enumerate(ns):  # equality of the law for Λ = I
        np.testing.assert_allclose(M[i], tb.theory.scaling_law(iso, n, K)[1:].numpy(), rtol=1e-10)


def test_grid_matrix_rejects_holes():
    frame = pd.DataFrame({"n": [1, 1, 2], "k": [1, 2, 1], "error": [0.5, 0.2, 0.4]})
    with pytest.raises(ValueError, match="missing"):
        tb.experiments.grid_matrix(frame)


def test_steps_to_reach():
    assert tb.experiments.steps_to_reach([0.5, 0.2, 0.05], 0.2) == 2
    assert tb.experiments.steps_to_reach([0.5, 0.2, 0.05], 0.6) == 1
    assert tb.experiments.steps_to_reach([0.5, 0.2], 0.01) is None
    # an array that starts at k = 0, and any labels for its entries
    assert tb.experiments.steps_to_reach([1.0, 0.5, 0.2], 0.5, ks=range(3)) == 1
    assert tb.experiments.steps_to_reach([0.9, 0.1], 0.2, ks=[4, 8]) == 8
    with pytest.raises(ValueError, match="ks must match errors"):
        tb.experiments.steps_to_reach([0.9, 0.1], 0.2, ks=[4])


def test_train_lsas_approaches_closed_form():
    d = 3
    models, history = tb.experiments.train_lsas(tb.isotropic(d), (5, 10),
                                    tb.TrainConfig(steps=80, batch_size=128, lr=0.05, log_every=20),
                                    device="cpu")
    assert sorted(models) == [5, 10] and set(history.n) == {5, 10}
    final = history.groupby("n").distance.last()
    assert (final < 0.1).all() and (history.groupby("n").distance.first() > 0.5).all()
    assert tb.experiments.learned_v(models[5]).dtype == torch.float64


def test_errors_summaries_and_quantiles():
    d, K = 4, 3
    iso = tb.isotropic(d)
    prompts = tb.RegressionTask(iso).sample(20, 200, seed=1, split="eval", dtype=torch.float64)
    preds = {n: tb.PseudoNewton.trained(iso, n) for n in (5, 10)}
    errors = tb.experiments.errors_by_n(preds, prompts, K)
    assert errors[5].shape == (200, K)
    frame = tb.experiments.summarize_by_n(errors, "closed form", n_boot=50)
    assert set(frame.predictor) == {"closed form, n = 5", "closed form, n = 10"}
    row = frame[(frame.n == 10) & (frame.k == 2)].iloc[0]
    assert row["mean"] == pytest.approx(errors[10][:, 1].mean().item())
    table = tb.experiments.error_quantiles(errors, 2, quantiles=(0.5, 0.9))
    assert list(table.columns) == ["q0.5", "q0.9", "mean"] and list(table.index) == [5, 10]
    assert (table["q0.5"] <= table["q0.9"]).all()
    with pytest.raises(ValueError, match="k must"):
        tb.experiments.error_quantiles(errors, K + 1)


def test_compare_mixtures_single_task_is_pseudo_newton():
    d, n, k = 6, 15, 4
    covs = list(tb.task_kinds(d, 2, 5, 0.5, 0.05).values())
    target = tb.power_law(d, 1.0)
    frame = tb.experiments.compare_mixtures(covs, {"one": torch.eye(4, dtype=DTYPE)[2], "uniform": torch.full((4,), 0.25)}, target, n, k)
    expected = tb.theory.population_error(tb.theory.pseudo_newton_v(covs[2], n), target, k)[-1].item()
    assert frame.loc[0, "error"] == pytest.approx(expected, rel=1e-10)
    assert frame.loc[0, "hard_mass"] == 1.0 and frame.loc[1, "hard_mass"] == 0.5  # the two hard kinds
    assert frame.loc[1, "objective"] == pytest.approx(
        tb.theory.selection_objective(covs, target, torch.full((4,), 0.25)))


def test_hardness_sweep_matches_theory_and_bound():
    families = {"iso": [tb.isotropic(4)], "power": [tb.power_law(4, 1.5)]}
    sweep = tb.experiments.hardness_sweep(families, n=10, n_steps=2, m=2000, n_prompts=2000, seed=1)
    assert list(sweep["family"]) == ["iso", "power"]
    assert (sweep["theory"] <= sweep["bound"] * (1 + 1e-12)).all()
    assert sweep.loc[0, "theory"] == pytest.approx(sweep.loc[0, "bound"])  # equality for Λ = I
    assert ((sweep["mean"] - sweep["theory"]).abs() / sweep["theory"] < 0.1).all()  # m finite: O(1/m)


def test_train_on_mixture_reaches_mixture_optimum():
    covs = [tb.skill_task(3, 1, 0.2), tb.isotropic(3)]
    probs = torch.tensor([0.3, 0.7], dtype=DTYPE)
    config = tb.TrainConfig(steps=200, batch_size=128, lr=0.05, seed=2)
    model = tb.experiments.train_on_mixture(covs, probs, 8, config, device="cpu")
    V = tb.theory.mixture_optimum(covs, probs, 8)
    assert torch.linalg.norm(model.V31.detach().double() - V) / torch.linalg.norm(V) < 0.05


def test_label_runs_builds_labels_from_typed_columns():
    frame = pd.DataFrame({"n": [10, 15], "n_lo": [10, 5], "pos": ["none", "learned"],
                          "train_cov": ["isotropic", "power_raw:1.0"]})
    assert tb.runs.label_runs(frame, prefix="GPT, ").tolist() == ["GPT, n = 10", "GPT, n = 5..15"]
    assert tb.runs.label_runs(frame, ("pos", "n")).tolist() == ["pos = none, n = 10", "pos = learned, n = 5..15"]
    assert tb.runs.label_runs(frame.drop(columns="n_lo"), ("train_cov", "n")).tolist() == [
        "isotropic, n = 10", "power_raw:1.0, n = 15"]
