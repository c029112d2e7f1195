"""The LSA layer: one pass is one pseudo-Newton step, CoT is its iteration."""
import pytest
import torch

import ttsbook as tb
from ttsbook.checks import DTYPE


def _model(d, cov, n):
    return tb.LSA(tb.LSAConfig(d)).double().set_closed_form(cov, n)


def _prompts(cov, m, batch=64, seed=0):
    return tb.RegressionTask(cov).sample(m, batch, seed=seed, split="eval", dtype=DTYPE)


def test_embedding_layout():
    p = _prompts(tb.isotropic(3), 5, batch=2)
    Z = tb.embed(p)
    assert Z.shape == (2, 8, 6)
    assert torch.equal(Z[:, :3, :5], p.X.transpose(1, 2)) and torch.equal(Z[:, 3, :5], p.y)
    assert torch.equal(Z[:, 4:7], torch.zeros(2, 3, 6, dtype=DTYPE))  # w_0 = 0, never the true w
    assert torch.equal(Z[:, 7], torch.tensor([0, 0, 0, 0, 0, 1.0], dtype=DTYPE).expand(2, 6))


def test_one_pass_is_the_pseudo_newton_update():
    d, n, m = 6, 10, 15
    lam = tb.rotate(tb.power_law(d, 1.0), seed=0)
    model, p = _model(d, lam, n), _prompts(tb.isotropic(d), m)
    full = model(tb.embed(p))[:, d + 1:2 * d + 1, -1]       # the honest f(Z), (T, T) scores and all
    S = p.X.transpose(1, 2) @ p.X / m
    expected = -(tb.theory.pseudo_newton_v(lam, n) @ S @ -p.w[:, :, None])[:, :, 0]  # ŵ_1 = V Ŝ (0 − w)
    assert torch.allclose(full, -expected, atol=1e-10)
    assert torch.allclose(model.predict(p, 1)[:, 0], full, atol=1e-10)


def test_k_passes_match_closed_form_iterates():
    d, n, m, K = 5, 12, 9, 6
    lam = tb.rotate(tb.power_law(d, 0.8), seed=1)
    model, p = _model(d, lam, n), _prompts(tb.isotropic(d), m, seed=3)
    iterates = model.predict(p, K)
    S = p.X.transpose(1, 2) @ p.X / m
    M = torch.eye(d, dtype=DTYPE) - torch.linalg.inv(tb.theory.gamma(lam, n)) @ S   # (B, d, d)
    for k in range(1, K + 1):
        expected = p.w - (torch.linalg.matrix_power(M, k) @ p.w[:, :, None])[:, :, 0]
        assert torch.allclose(iterates[:, k - 1], expected, atol=1e-10)


def test_cot_rollout_equals_full_forward_on_the_grown_prompt():
    d, n, K = 4, 7, 4
    model, p = _model(d, tb.isotropic(d), n), _prompts(tb.isotropic(d), n, batch=8)
    iterates = model.predict(p, K)
    Z = tb.embed(p)
    for k in range(K):
        w_hat = model(Z, n_points=n)[:, d + 1:2 * d + 1, -1]
        assert torch.allclose(iterates[:, k], w_hat, atol=1e-10)
        Z = torch.cat([Z, tb.cot_column(w_hat)], dim=2)


def test_isotropic_cot_is_gradient_descent():
    d, n, m, K = 8, 20, 30, 5
    model, p = _model(d, tb.isotropic(d), n), _prompts(tb.isotropic(d), m)
    gd = tb.GradientDescent(n / (n + d + 1), d).predict(p, K)
    assert torch.allclose(model.predict(p, K), gd, atol=1e-10)


def test_w13_receives_exactly_zero_gradient():
    d, n = 5, 10
    model = tb.LSA(tb.LSAConfig(d, train_w13=True, init_std=0.1)).double()
    W13_before = model.W13.detach().clone()
    loss = tb.direct_loss(model, _prompts(tb.rotate(tb.power_law(d, 1.0)), n))
    loss.backward()
    assert model.V31.grad.abs().max() > 0
    assert torch.equal(model.W13.grad, torch.zeros(d, d, dtype=DTYPE))
    assert torch.equal(model.W13.detach(), W13_before)


def test_predict_zero_steps_and_float32():
    d = 3
    model = tb.LSA(tb.LSAConfig(d)).set_closed_form(tb.isotropic(d), 5)
    p = _prompts(tb.isotropic(d), 5, batch=4)
    assert model.predict(p, 0).shape == (4, 0, d)
    out = model.predict(p, 3)
    assert out.dtype == torch.float32 and out.shape == (4, 3, d)


def test_predict_rejects_bad_input():
    d = 3
    model = tb.LSA(tb.LSAConfig(d))
    p = _prompts(tb.isotropic(d), 5, batch=4)
    with pytest.raises(ValueError, match="n_steps"):
        model.predict(p, -1)
    with pytest.raises(ValueError, match="n_dims"):
        model.predict(_prompts(tb.isotropic(d + 1), 5), 1)
    bad = tb.Prompts(p.X.clone(), p.y.clone(), p.w)
    bad.y[0, 0] = float("nan")
    with pytest.raises(ValueError, match="prompts.y holds NaN"):
        model.predict(bad, 1)
    with pytest.raises(ValueError, match="prompts.y must have shape"):
        model.predict(tb.Prompts(p.X, p.y[:, :-1], p.w), 1)
    with pytest.raises(ValueError, match="cov must be"):
        model.set_closed_form(tb.isotropic(d + 2), 5)
    with pytest.raises(ValueError, match="n_dims"):
        tb.LSAConfig(0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lsa_on_gpu_matches_cpu():
    d, n = 6, 10
    model = _model(d, tb.isotropic(d), n)
    p = _prompts(tb.isotropic(d), n)
    cpu = model.predict(p, 5)
    gpu = model.to("cuda").predict(p.to("cuda"), 5).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-8)
