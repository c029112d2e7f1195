"""ttsbook.experiments: sweeps over the training context n and the number of passes k."""
import numpy as np
import pandas as pd
import pytest
import torch

import ttsbook
from ttsbook import experiments as ex


def test_population_grid_matches_scaling_law_for_identity():
    d, ns, K = 5, (4, 10, 30), 6
    iso = ttsbook.isotropic(d)
    grid = ex.population_grid({n: ttsbook.pseudo_newton_v(iso, n) for n in ns}, iso, K)
    assert list(grid.columns) == ["n", "k", "error"] and len(grid) == len(ns) * K
    got_ns, ks, M = ex.grid_matrix(grid)
    assert got_ns.tolist() == list(ns) and ks.tolist() == list(range(1, K + 1))
    for i, n in enumerate(ns):  # equality of the law for Λ = I
        np.testing.assert_allclose(M[i], ttsbook.scaling_law(iso, n, K)[1:].numpy(), rtol=1e-10)


def test_grid_matrix_rejects_holes():
    frame = pd.DataFrame({"n": [1, 1, 2], "k": [1, 2, 1], "error": [0.5, 0.2, 0.4]})
    with pytest.raises(ValueError, match="missing"):
        ex.grid_matrix(frame)


def test_steps_to_reach():
    assert ex.steps_to_reach([0.5, 0.2, 0.05], 0.2) == 2
    assert ex.steps_to_reach([0.5, 0.2, 0.05], 0.6) == 1
    assert ex.steps_to_reach([0.5, 0.2], 0.01) is None


def test_context_needed_equals_n_star_for_identity_and_is_below_it_otherwise():
    d, eps = 5, 1e-2
    for k in (1, 3):
        n_iso = ex.context_needed(ttsbook.isotropic(d), k, eps)
        assert n_iso == pytest.approx(ttsbook.n_star(d, k, eps).item(), rel=1e-6)
    skew = ttsbook.power_law(d, 1.0)
    n_skew = ex.context_needed(skew, 2, eps)
    err = ttsbook.population_error(ttsbook.pseudo_newton_v(skew, n_skew), skew, 2)[2].item()
    assert err == pytest.approx(eps, rel=1e-5)
    assert n_skew < ttsbook.n_star(ttsbook.hardness(skew), 2, eps).item()
    with pytest.raises(ValueError, match="eps"):
        ex.context_needed(skew, 1, 2.0)


def test_train_lsas_approaches_closed_form():
    d = 3
    models, history = ex.train_lsas(ttsbook.isotropic(d), (5, 10),
                                    ttsbook.TrainConfig(steps=80, batch_size=128, lr=0.05, log_every=20),
                                    device="cpu")
    assert sorted(models) == [5, 10] and set(history.n) == {5, 10}
    final = history.groupby("n").distance.last()
    assert (final < 0.1).all() and (history.groupby("n").distance.first() > 0.5).all()
    assert ex.learned_v(models[5]).dtype == torch.float64


def test_errors_summaries_and_quantiles():
    d, K = 4, 3
    iso = ttsbook.isotropic(d)
    prompts = ttsbook.RegressionTask(iso).sample(20, 200, seed=1, split="eval", dtype=torch.float64)
    preds = {n: ttsbook.PseudoNewton.trained(iso, n) for n in (5, 10)}
    errors = ex.errors_by_n(preds, prompts, K)
    assert errors[5].shape == (200, K)
    frame = ex.summarize_by_n(errors, "closed form", n_boot=50)
    assert set(frame.predictor) == {"closed form, n = 5", "closed form, n = 10"}
    row = frame[(frame.n == 10) & (frame.k == 2)].iloc[0]
    assert row["mean"] == pytest.approx(errors[10][:, 1].mean().item())
    table = ex.error_quantiles(errors, 2, quantiles=(0.5, 0.9))
    assert list(table.columns) == ["q0.5", "q0.9", "mean"] and list(table.index) == [5, 10]
    assert (table["q0.5"] <= table["q0.9"]).all()
    with pytest.raises(ValueError, match="k must"):
        ex.error_quantiles(errors, K + 1)


def test_prompt_mu_max_matches_eigenvalues_and_population_limit():
    d, n = 4, 10
    skew = ttsbook.power_law(d, 1.0)
    V = ttsbook.pseudo_newton_v(skew, n)
    prompts = ttsbook.RegressionTask(ttsbook.isotropic(d)).sample(3, 5, seed=0, dtype=torch.float64)
    X = prompts.X[2]
    S = X.T @ X / 3
    expected = torch.linalg.eigvals(torch.linalg.solve(ttsbook.gamma(skew, n), S)).real.max()
    assert ex.prompt_mu_max(V, prompts)[2].item() == pytest.approx(expected.item(), rel=1e-10)
    long = ttsbook.RegressionTask(ttsbook.isotropic(d)).sample(20_000, 2, seed=0, dtype=torch.float64)
    population = ttsbook.mu_spectrum(V, ttsbook.isotropic(d)).max().item()
    assert ex.prompt_mu_max(V, long).numpy() == pytest.approx([population] * 2, rel=0.05)
