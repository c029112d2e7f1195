"""Training reaches the closed form; evaluation is tidy, shared and batched; checkpoints."""
import time

import numpy as np
import pytest
import torch

import ttsbook as tb
from ttsbook.evaluate import bootstrap_mean_ci
from ttsbook.utils import load_checkpoint, save_checkpoint


def _distance(model, target):
    return (torch.linalg.norm(model.V31.detach().double() - target) / torch.linalg.norm(target)).item()


def test_training_reaches_minus_gamma_inverse():
    d, n = 10, 20
    cov = tb.rotate(tb.power_law(d, 1.0), seed=1)
    assert (cov - torch.diag(torch.diagonal(cov))).abs().max() > 0.1   # a non-diagonal Λ
    target = tb.theory.pseudo_newton_v(cov, n)
    model = tb.LSA(tb.LSAConfig(d, seed=0))
    assert _distance(model, target) > 0.9              # starts far: small random init
    config = tb.TrainConfig(steps=500, batch_size=1024, lr=0.01, log_every=50)
    start = time.perf_counter()
    history = tb.train(model, tb.RegressionTask(cov), n, config, monitor=lambda m: {"dist": _distance(m, target)},
                       device="cpu")
    print(f"trained to {history['dist'].iloc[-1]:.4f} in {time.perf_counter() - start:.1f} s")
    assert history["dist"].iloc[-1] < 0.03
    assert list(history.columns) == ["step", "loss", "lr", "dist"]
    assert history["lr"].iloc[-1] < 1e-6               # cosine decays to zero


def test_sgd_and_schedules():
    cfg = tb.TrainConfig(steps=10, warmup=2, schedule="linear")
    assert [round(cfg.lr_factor(s), 3) for s in (0, 1, 2, 6)] == [0.5, 1.0, 1.0, 0.5]
    model = tb.LSA(tb.LSAConfig(3))
    hist = tb.train(model, tb.RegressionTask(tb.isotropic(3)), 8,
                    tb.TrainConfig(steps=200, batch_size=128, lr=0.05, optimizer="sgd", schedule="constant"),
                    device="cpu")
    assert hist["loss"].iloc[-1] < 0.8 * hist["loss"].iloc[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"schedule": "step"}, "schedule"), ({"warmup": 5, "steps": 5}, "warmup"),
])
def test_bad_train_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb.TrainConfig(**kwargs)


def test_training_stops_on_nan():
    model = tb.LSA(tb.LSAConfig(3))
    with pytest.raises(FloatingPointError, match="lower lr"):
        tb.train(model, tb.RegressionTask(tb.isotropic(3)), 5, tb.TrainConfig(steps=50, lr=1e6, optimizer="sgd"),
                 device="cpu")


def test_evaluate_is_tidy_and_scores_every_predictor_on_the_same_prompts():
    d, n = 5, 10
    eye = tb.isotropic(d)
    lsa = tb.LSA(tb.LSAConfig(d)).set_closed_form(eye, n)
    preds = {"lsa": lsa, "closed form": tb.PseudoNewton.trained(eye, n), "ls": tb.LeastSquares()}
    df = tb.evaluate(preds, tb.RegressionTask(eye), 12, 4, n_prompts=2000, seed=3)
    assert list(df.columns) == ["predictor", "k", "mean", "ci_low", "ci_high", "median", "m"]
    assert (df.m == 12).all() and len(df) == 12 and (df["ci_low"] <= df["mean"]).all() and (df["mean"] <= df["ci_high"]).all()
    a, b = (df[df.predictor == p]["mean"].to_numpy() for p in ("lsa", "closed form"))
    assert np.allclose(a, b, rtol=1e-4)                  # same prompts, same maths
    assert df[df.predictor == "ls"]["mean"].max() < 1e-20  # m ≥ d, noiseless: exact


def test_evaluate_keeps_typed_keys_in_their_own_column():
    d = 4
    eye = tb.isotropic(d)
    preds = {n: tb.PseudoNewton.trained(eye, n) for n in (5, 20)}
    df = tb.evaluate(preds, tb.RegressionTask(eye), 200, 3, n_prompts=200, key="n")
    assert df.n.dtype.kind == "i" and sorted(set(df.n)) == [5, 20] and (df.m == 200).all()
    assert set(df.predictor) == {"n = 5", "n = 20"}
    mean = df.pivot(index="n", columns="k", values="mean")
    assert mean.loc[20, 1] < mean.loc[5, 1]        # long prompts: longer n is better
    with pytest.raises(tb.BadValue, match="key must be a column name"):
        tb.evaluate(preds, tb.RegressionTask(eye), 10, 3, n_prompts=10, key="n = ")
    with pytest.raises(tb.BadValue, match="at least one predictor"):
        tb.evaluate({}, tb.RegressionTask(eye), 10, 3)


def test_bootstrap_ci_covers_and_shrinks():
    rng = np.random.default_rng(0)
    errors = rng.exponential(size=(4000, 2))
    low, high = bootstrap_mean_ci(errors, n_boot=500)
    assert (low < 1).all() and (high > 1).all() and (high - low < 0.1).all()
    low2, high2 = bootstrap_mean_ci(errors[:400], n_boot=500)
    assert ((high2 - low2) > (high - low)).all()


def test_checkpoint_round_trip_and_config_mismatch(tmp_path):
    model = tb.LSA(tb.LSAConfig(4, seed=3))
    path = save_checkpoint(tmp_path / "lsa.pt", model, step=7)
    other = tb.LSA(tb.LSAConfig(4, seed=3))
    with torch.no_grad():
        other.V31.zero_()
    payload = load_checkpoint(path, other)
    assert torch.equal(other.V31, model.V31) and payload["step"] == 7
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="different config .*n_dims: saved 4 vs model 5"):
        load_checkpoint(path, tb.LSA(tb.LSAConfig(5)))


def test_book_scale(monkeypatch):
    monkeypatch.setenv("TTSBOOK_SCALE", "paper")
    assert tb.book_scale() == "paper"
    monkeypatch.setenv("TTSBOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="TTSBOOK_SCALE"):
        tb.book_scale()
    monkeypatch.delenv("TTSBOOK_SCALE")
    assert tb.book_scale() == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)     # a GPU never picks "paper"
    assert tb.book_scale() == "gpu"
    monkeypatch.setenv("TTSBOOK_SCALE", "cpu")
    assert tb.book_scale() == "cpu"


def test_announce_prints_the_scale_and_needs_every_estimate(capsys):
    tb.announce("gpu", cpu="1 min", gpu="2 min on a T4", paper="1 h")
    assert capsys.readouterr().out == "scale 'gpu': estimated 2 min on a T4\n"
    with pytest.raises(ValueError, match="missing \\['paper'\\]"):
        tb.announce("cpu", cpu="1 min", gpu="2 min")
    with pytest.raises(ValueError, match="scale must be one of"):
        tb.announce("tpu", cpu="", gpu="", paper="")
