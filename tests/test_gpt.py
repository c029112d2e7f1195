"""The GPT-style decoder: shapes, causality, KV-cache rollout, parameter count, validation."""
import pytest
import torch

import ttsbook as tb
from ttsbook.gpt import PRESETS, KVCache, decode_mask
from ttsbook.tokens import tokens
from ttsbook.checks import DTYPE


def _model(**overrides):
    """A tiny float64 model, so cached and full computations agree to rounding error."""
    config = tb.preset("cpu", n_dims=3, n_layer=2, n_head=2, n_embd=16, max_len=32, **overrides)
    return tb.GPT(config).double().eval()


def _prompts(d=3, m=6, batch=4, seed=0):
    return tb.RegressionTask(tb.isotropic(d)).sample(m, batch, seed=seed, split="eval", dtype=DTYPE)


def _full_rollout(model, prompts, n_steps):
    """CoT without a cache: rerun the whole sequence after each appended token."""
    tok, iterates = tokens(prompts), []
    for _ in range(n_steps):
        iterates.append(model(tok)[:, -1])
        tok = torch.cat([tok, tb.cot_column(iterates[-1]).transpose(1, 2)], dim=1)
    return torch.stack(iterates, dim=1)


def expected_params(c: tb.GPTConfig) -> int:
    """Count by hand: read-in, positions, per block (2 LayerNorms, qkv, proj, 4x MLP), ln_f, read-out."""
    C, D = c.n_embd, 2 * c.n_dims + 2
    block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    positions = c.max_len * C if c.pos == "learned" else 0
    return (D * C + C) + positions + c.n_layer * block + 2 * C + (C * c.n_dims + c.n_dims)


def test_token_layout():
    p = _prompts(d=3, m=5, batch=2)
    tok = tokens(p)
    assert tok.shape == (2, 6, 8)
    assert torch.equal(tok[:, :5, :3], p.X) and torch.equal(tok[:, :5, 3], p.y)
    assert torch.equal(tok[:, :5, 4:], torch.zeros(2, 5, 4, dtype=DTYPE))
    assert torch.equal(tok[:, 5], torch.tensor([0, 0, 0, 0, 0, 0, 0, 1.0], dtype=DTYPE).expand(2, 8))


@pytest.mark.parametrize("pos", ["none", "learned"])
def test_shapes(pos):
    model = _model(pos=pos)
    p = _prompts(m=6, batch=4)
    assert model(tokens(p)).shape == (4, 7, 3)
    assert model.predict(p, 5).shape == (4, 5, 3)
    assert model.predict(p, 0).shape == (4, 0, 3)


@pytest.mark.parametrize("pos", ["none", "learned"])
def test_causal(pos):
    model = _model(pos=pos)
    tok = tokens(_prompts(m=8))
    changed = tok.clone()
    changed[:, 5:] += torch.randn(changed[:, 5:].shape, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    out, out_changed = model(tok), model(changed)
    torch.testing.assert_close(out[:, :5], out_changed[:, :5], rtol=0, atol=0)
    assert (out[:, 5:] - out_changed[:, 5:]).abs().min() > 0  # later outputs do see the change


@pytest.mark.parametrize("pos", ["none", "learned"])
def test_kv_cache_rollout_equals_full_recompute(pos):
    model, p = _model(pos=pos), _prompts(m=6)
    torch.testing.assert_close(model.predict(p, 8), _full_rollout(model, p, 8), rtol=0, atol=1e-10)


def test_kv_cache_several_new_tokens_at_once():
    model, tok = _model(pos="learned"), tokens(_prompts(m=9))
    first, cache = model(tok[:, :4], KVCache())
    rest, cache = model(tok[:, 4:], cache)
    assert cache.length == 10 and len(cache.layers) == 2
    torch.testing.assert_close(torch.cat([first, rest], dim=1), model(tok), rtol=0, atol=1e-10)


def test_decode_mask_aligns_bottom_right():
    assert decode_mask(3, 3, "cpu") is None and decode_mask(1, 5, "cpu") is None
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(decode_mask(3, 5, "cpu"), expected)


def test_float32_cache_matches_float64_recompute():
    model = _model()
    p = _prompts()
    ref = _full_rollout(model, p, 6)
    torch.testing.assert_close(model.float().predict(p, 6).double(), ref, rtol=1e-4, atol=1e-5)


def test_paper_parameter_count():
    config = PRESETS["paper"]
    n = tb.GPT(config).num_params()
    assert n == expected_params(config) == 9_493_780
    assert 9.0e6 <= n <= 10.0e6  # science.md: ≈9.5M for 12 layers, 8 heads, width 256
    learned = tb.preset("cpu", pos="learned")
    assert tb.GPT(learned).num_params() == expected_params(learned)


def test_init_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = (tb.GPT(tb.preset("cpu", seed=s)) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.read_in.weight, c.read_in.weight)


def test_predict_is_differentiable():
    model, p = _model(), _prompts()
    model.predict(p, 3).square().mean().backward()
    assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in model.parameters())


def test_no_positions_handles_any_length_but_learned_checks_max_len():
    p = _prompts(m=30)
    assert _model(pos="none").predict(p, 10).shape == (4, 10, 3)  # 40 tokens > max_len = 32
    with pytest.raises(ValueError, match="max_len"):
        _model(pos="learned").predict(p, 10)
    with pytest.raises(ValueError, match="max_len"):
        _model(pos="learned")(tokens(_prompts(m=40)))


@pytest.mark.parametrize("field, value", [
    ("n_dims", 0), ("n_layer", -1), ("n_head", 2.5), ("n_embd", 0), ("max_len", True),
    ("n_head", 3), ("pos", "rotary"), ("dropout", 1.0), ("dropout", -0.1), ("seed", -1),
])
def test_bad_config_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tb.preset("cpu", **{field: value})


def test_preset_errors():
    with pytest.raises(ValueError, match="paper"):
        tb.preset("huge")
    with pytest.raises(ValueError, match="n_layers"):
        tb.preset("cpu", n_layers=3)
    assert tb.preset("cpu", n_layer=2).n_layer == 2 and PRESETS["cpu"].n_layer == 4


def test_predict_validates_inputs():
    model = _model()
    with pytest.raises(ValueError, match="n_steps"):
        model.predict(_prompts(), -1)
    with pytest.raises(ValueError, match="n_steps"):
        model.predict(_prompts(), 2.0)
    with pytest.raises(ValueError, match="n_dims"):
        model.predict(_prompts(d=4), 2)
    bad = _prompts()
    bad.y[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad, 2)
    with pytest.raises(ValueError, match="width"):
        model(torch.zeros(1, 3, 9, dtype=DTYPE))


def test_predict_casts_prompts_to_the_model_dtype():
    model = _model().float()
    out = model.predict(_prompts(), 2)  # float64 prompts, float32 model
    assert out.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_on_cuda_matches_cpu():
    model, p = _model(pos="learned").float(), _prompts()
    cpu = model.predict(p, 6)
    cuda = model.to("cuda").predict(p, 6)  # prompts stay on the CPU: predict moves them
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-3, atol=1e-4)
