"""Covariances and the task sampler: validity, determinism, streams, clear errors."""
import pytest
import torch

import ttsbook as tb
from ttsbook.spectra import random_rotation
from ttsbook.tasks import make_task
from ttsbook.checks import DTYPE
from ttsbook.tasks import generator


def test_spectra_shapes_and_hardness():
    d = 6
    assert tb.hardness(tb.isotropic(d)) == pytest.approx(d)
    raw, norm = tb.power_law(d, 1.0, normalise=False), tb.power_law(d, 1.0)
    assert raw[0, 0] == 1 and torch.trace(norm).item() == pytest.approx(d)
    assert tb.hardness(raw) == pytest.approx(tb.hardness(norm))          # scale-free
    assert tb.hardness(tb.rotate(raw, seed=2)) == pytest.approx(tb.hardness(raw))
    missing = tb.missing_skills(d, [0, 3], eps=0.01)
    assert torch.allclose(torch.diagonal(missing), torch.tensor([0.01, 1, 1, 0.01, 1, 1], dtype=DTYPE))
    assert tb.hardness(tb.missing_skills(d, [1], eps=0.0)) == float("inf")
    q = random_rotation(d, seed=5)
    assert torch.allclose(q @ q.T, torch.eye(d, dtype=DTYPE), atol=1e-12)


@pytest.mark.parametrize("cov, message", [
    (torch.tensor([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "smallest eigenvalue is -1"),
    (torch.ones(2, 3), r"square \(d, d\)"),
    (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), "NaN"),
])
def test_bad_covariance_is_rejected(cov, message):
    with pytest.raises(ValueError, match=message):
        tb.RegressionTask(cov)
    with pytest.raises(ValueError, match="test_cov"):
        tb.theory.population_error(torch.eye(cov.shape[0]), cov, 3)


def test_bad_sizes_are_rejected():
    eye = tb.isotropic(3)
    with pytest.raises(ValueError, match="n must be a number >= 1"):
        tb.theory.gamma(eye, 0)
    with pytest.raises(ValueError, match="n_points"):
        tb.RegressionTask(eye).sample(0, 4)
    with pytest.raises(ValueError, match="n_steps"):
        tb.theory.population_error(eye, eye, -1)
    with pytest.raises(ValueError, match="V must have shape"):
        tb.theory.population_error(torch.eye(4), eye, 2)
    with pytest.raises(ValueError, match="directions"):
        tb.missing_skills(3, [5])
    with pytest.raises(ValueError, match="probs"):
        tb.MixtureTask([eye, eye], [0.7, 0.7])
    with pytest.raises(ValueError, match="split"):
        tb.RegressionTask(eye).sample(3, 2, split="test")


def test_sampler_is_deterministic_and_correct():
    cov = tb.rotate(tb.power_law(4, 1.0), seed=1)
    task = tb.RegressionTask(cov)
    a = task.sample(10, 3, seed=7, step=2, dtype=DTYPE)
    b = task.sample(10, 3, seed=7, step=2, dtype=DTYPE)
    assert torch.equal(a.X, b.X) and torch.equal(a.w, b.w)
    assert torch.allclose(a.y, torch.einsum("bnd,bd->bn", a.X, a.w))
    assert not torch.equal(task.sample(10, 3, seed=7, step=3).X, a.X.float())
    assert not torch.equal(task.sample(10, 3, seed=7, step=2, split="eval").X, a.X.float())
    big = task.sample(200, 500, seed=0, dtype=DTYPE)
    emp = torch.einsum("bni,bnj->ij", big.X, big.X) / (200 * 500)
    assert torch.allclose(emp, cov, atol=0.03)
    assert big.w.var().item() == pytest.approx(1.0, abs=0.05)


def test_streams_are_separate():
    """Label noise draws from its own stream: adding it leaves features and tasks untouched."""
    cov = tb.isotropic(3)
    clean = tb.RegressionTask(cov).sample(5, 4, seed=1, dtype=DTYPE)
    noisy = tb.RegressionTask(cov, noise_std=0.5).sample(5, 4, seed=1, dtype=DTYPE)
    assert torch.equal(clean.X, noisy.X) and torch.equal(clean.w, noisy.w)
    assert (clean.y - noisy.y).std().item() == pytest.approx(0.5, rel=0.5)
    assert generator(1, 0, "features").initial_seed() != generator(1, 0, "tasks").initial_seed()


def test_mixture_draws_each_component():
    d = 3
    covs = [tb.missing_skills(d, [0], 0.0), tb.missing_skills(d, [1, 2], 0.0)]
    p = tb.MixtureTask(covs, [0.25, 0.75]).sample(4, 4000, seed=0, dtype=DTYPE)
    first_only = (p.X[:, :, 0] == 0).all(1)   # prompts from covs[0] never use direction 0
    assert first_only.double().mean().item() == pytest.approx(0.25, abs=0.03)
    assert ((p.X[~first_only][:, :, 1:] == 0).all())


def test_cov_specs_parse_and_reject_clearly():
    assert torch.equal(tb.parse_cov("isotropic", 3), torch.eye(3))
    assert torch.equal(tb.parse_cov("power:1.0", 4), tb.power_law(4, 1.0))
    assert torch.allclose(torch.diag(tb.parse_cov("power_raw:2", 3)), torch.tensor([1, 1 / 4, 1 / 9]).double())
    assert torch.equal(torch.diag(tb.parse_cov("missing:0,2:0.25", 3)), torch.tensor([0.25, 1, 0.25]).double())
    assert isinstance(make_task("isotropic+power:1", 3), tb.MixtureTask)
    for bad in ("powr:1", "power:", "power:abc", "missing", "isotropic:2"):
        with pytest.raises(ValueError, match="bad covariance spec"):
            tb.parse_cov(bad, 3)


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
    assert tuple(kinds) == tb.spectra.KINDS
    hard = {k: tb.hardness(c) for k, c in kinds.items()}
    assert hard["hard-few"] > hard["easy-few"] and hard["hard-many"] > hard["easy-many"]
    with pytest.raises(ValueError, match="few must be"):
        tb.task_kinds(10, 8, 2, 0.5, 0.05)
    with pytest.raises(ValueError, match="eps_hard"):
        tb.task_kinds(10, 2, 8, 0.05, 0.5)


def test_prompts_know_their_moments_residuals_and_errors():
    task = tb.RegressionTask(tb.power_law(4, 1.0))
    p = task.sample(9, 50, seed=2)
    S, b = p.moments()
    assert S.dtype == torch.float64 and S.shape == (50, 4, 4) and b.shape == (50, 4)
    assert torch.allclose(torch.einsum("bij,bj->bi", S, p.w.double()), b)  # noiseless: Ŝw = b
    w_hat = torch.randn(50, 3, 2, 4, dtype=torch.float64)                   # any leading shape
    r, e = p.residuals(w_hat), p.errors(w_hat)
    assert r.shape == e.shape == (50, 3, 2)
    X, y = p.X.double(), p.y.double()
    direct = ((y[:, None, :] - torch.einsum("bnd,bkd->bkn", X, w_hat[:, :, 1])) ** 2).mean(-1)
    assert torch.allclose(r[:, :, 1], direct)
    assert torch.allclose(e[:, 2, 0], ((w_hat[:, 2, 0] - p.w.double()) ** 2).mean(-1))
    assert p.residuals(p.w.double()).abs().max() < 1e-10 and p.errors(p.w.double()).max() == 0
