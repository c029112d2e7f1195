"""CoT training of the GPT model and runs that survive: specs, loss, checkpoints, resume, skip."""
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

import ttsbook
from ttsbook.gpt import GPT
from ttsbook.runs import (SHIPPED_RUNS, RunConfig, RunDir, RunTrainConfig, export_half, load_config,
                          load_run, train_run)
from ttsbook.tasks import make_task
from ttsbook.tokens import cot_tokens, tokens
from ttsbook.train import TrainConfig, Trainer, cot_loss
from ttsbook.utils import amp_dtype, load_checkpoint

TINY = {"n_dims": 2, "n_layer": 1, "n_head": 2, "n_embd": 16}


def tiny(**kw) -> RunConfig:
    base = dict(model=TINY, n_points=4, cot_steps=3, steps=12, batch_size=8, warmup=2, ckpt_every=4)
    return RunConfig(**(base | kw))


def test_run_config_hash_and_validation():
    a = tiny()
    assert a.run_id() == tiny().run_id() == tiny(ckpt_every=7).run_id()  # ckpt period: same result
    assert a.run_id() != tiny(seed=1).run_id()
    assert RunDir.of(a, "root").name.startswith("cpu-n4-isotropic-k3-")
    assert {tiny(n_points=[3, 6]).n_points_at(s) for s in range(50)} == {3, 4, 5, 6}
    with pytest.raises(ValueError, match="preset"):
        tiny(preset="huge")
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        tiny(model={"width": 3})
    with pytest.raises(ValueError, match="n_points"):
        tiny(n_points=[5, 2])
    with pytest.raises(ValueError, match=r"missing:9.*d = 2"):
        tiny(train_cov="missing:9")
    with pytest.raises(TypeError, match="width"):
        tiny(width=3)


def test_run_config_nests_the_model_and_training_configs():
    """Flat training fields, a dict or a TrainConfig: one config; warmup adapts to short runs."""
    flat = tiny(steps=50, warmup=None)
    assert flat.train == RunTrainConfig(steps=50, batch_size=8, lr=1e-3, warmup=5)
    assert flat == RunConfig(model=TINY, n_points=4, cot_steps=3, ckpt_every=4,
                             train={"steps": 50, "batch_size": 8})
    assert flat.model == ttsbook.preset("cpu", **TINY) and RunConfig(steps=50).train.warmup == 5
    assert RunConfig().train.warmup == 100 and tiny(optimizer="sgd").run_id() != tiny().run_id()
    assert RunConfig(**flat.record()) == flat


@pytest.mark.parametrize("run", sorted(p.name for p in SHIPPED_RUNS.iterdir()
                                         if (p / "config.json").exists()))
def test_shipped_runs_are_found_by_their_chapter_config(run):
    """Chapter 8 finds each shipped run from its config, built as the chapter builds it."""
    saved = json.loads(RunDir(SHIPPED_RUNS / run).config_file.read_text())
    config = RunConfig(preset="cpu", model={"pos": saved["model"]["pos"]}, n_points=saved["n_points"],
                               train_cov=saved["train_cov"], cot_steps=8, steps=2500, batch_size=64,
                               lr=1e-3, warmup=100)
    assert RunDir.of(config, SHIPPED_RUNS).path == SHIPPED_RUNS / run
    assert config.record() == saved


def test_cot_loss_reads_the_self_fed_rollout():
    """The teacher-forced pass reproduces predict's iterates, so the loss is their mean error."""
    model = GPT(tiny().model)
    prompts = make_task("isotropic", 2).sample(4, 5, seed=3)
    w_hat = model.predict(prompts, 3)
    want = ((w_hat - prompts.w[:, None]) ** 2).mean()
    assert torch.allclose(cot_loss(model, prompts, 3), want, atol=1e-6)
    tok = cot_tokens(w_hat)
    assert tok.shape == (5, 3, 6) and torch.equal(tok[..., 3:5], w_hat) and (tok[..., -1] == 1).all()
    direct = ((model.predict(prompts, 1)[:, 0] - prompts.w) ** 2).mean()
    assert torch.allclose(cot_loss(model, prompts, 1), direct, atol=1e-6)


def _grads(model, loss) -> list:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_cot_loss_gradient_is_one_teacher_forced_pass():
    """Prompt with gradient, rollout without, CoT tokens against the cache: the same gradient
    as one teacher-forced pass over [examples, query, stop-gradient CoT tokens]."""
    model = GPT(tiny(model=TINY | {"n_layer": 2}).model).double()
    prompts = make_task("isotropic", 2).sample(4, 5, seed=3, dtype=torch.float64)
    with torch.no_grad():
        w_cot = model.predict(prompts, 4)[:, :-1]                          # ŵ_1 … ŵ_{K-1}, K = 4
    tok = torch.cat([tokens(prompts), cot_tokens(w_cot)], dim=1)
    reference = ((model(tok)[:, prompts.n_points:].float() - prompts.w[:, None]) ** 2).mean()  # as cot_loss
    for got, want in zip(_grads(model, cot_loss(model, prompts, 4)), _grads(model, reference)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")  # dynamo's own probe
def test_cot_loss_runs_through_a_compiled_forward():
    """``forward`` may be a ``torch.compile`` wrapper (whose truth value is not defined)."""
    model = GPT(tiny().model)
    prompts = make_task("isotropic", 2).sample(4, 5, seed=3)
    compiled = torch.compile(model, backend="eager", dynamic=True)
    for k in (1, 3):
        torch.testing.assert_close(cot_loss(model, prompts, k, compiled), cot_loss(model, prompts, k))


def test_checkpoint_round_trip_and_skip(tmp_path):
    config = tiny()
    out = train_run(config, tmp_path)
    assert {p.name for p in out.path.iterdir()} == {"config.json", "model.pt", "history.csv", "done"}
    assert load_config(out) == config
    model = load_run(out)
    saved = torch.load(out.model_file, weights_only=True)["state_dict"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in saved.items())
    stamp = (out.model_file).stat().st_mtime_ns
    assert train_run(config, tmp_path) == out  # finished: skipped, nothing rewritten
    assert (out.model_file).stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="different config"):
        load_checkpoint(out.model_file, GPT(tiny(model=TINY | {"n_embd": 8}).model))
    export_half(out)  # float16 on disk, float32 again once loaded
    half = load_run(out).state_dict()
    assert all(half[k].dtype == torch.float32 and torch.allclose(half[k], v, rtol=1e-3, atol=1e-4)
               for k, v in saved.items())


KILL_SCRIPT = """
import os, signal, sys
from ttsbook.runs import RunConfig, train_run
config = RunConfig(**{config})
def die_after_first_checkpoint(trainer):  # a hook runs after the periodic checkpoint
    if trainer.steps_done == config.ckpt_every:
        os.kill(os.getpid(), signal.SIGKILL)
train_run(config, sys.argv[1], hooks=[die_after_first_checkpoint])
"""


def test_killed_run_resumes_to_identical_weights(tmp_path):
    config = tiny()
    fields = config.record()
    script = textwrap.dedent(KILL_SCRIPT).replace("{config}", repr(fields))
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a")], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    out = RunDir.of(config, tmp_path / "a")
    assert out.checkpoint_file.exists() and not out.finished
    assert torch.load(out.checkpoint_file, weights_only=True)["step"] == config.ckpt_every
    with pytest.raises(FileExistsError, match="resume"):
        train_run(config, tmp_path / "a")
    resumed = load_run(train_run(config, tmp_path / "a", resume=True)).state_dict()
    straight = load_run(train_run(config, tmp_path / "b")).state_dict()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    history = out.history_file.read_text()
    assert history == RunDir.of(config, tmp_path / "b").history_file.read_text()


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    with pytest.raises(FloatingPointError, match=r"at step \d+.*lower lr"):
        train_run(tiny(lr=1e9, warmup=0, schedule="constant"), tmp_path)


def test_cot_training_loss_decreases(tmp_path):
    config = tiny(steps=60, batch_size=16, lr=1e-2, warmup=5, ckpt_every=1000, log_every=1)
    out = train_run(config, tmp_path)
    loss = pd.read_csv(out.history_file)["loss"]
    assert loss.iloc[-10:].mean() < 0.8 * loss.iloc[:5].mean()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_compiled_run_saves_uncompiled_float32_weights(tmp_path):
    out = train_run(tiny(compile=True), tmp_path, device="cuda")
    state = torch.load(out.model_file, weights_only=True)["state_dict"]
    assert not any(k.startswith("_orig_mod") for k in state)
    assert all(v.dtype == torch.float32 and v.device.type == "cpu" for v in state.values())
    assert load_run(out, device="cuda").predict(make_task("isotropic", 2).sample(4, 3), 2).isfinite().all()


@pytest.mark.parametrize("native_bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_amp_dtype_needs_native_bf16(monkeypatch, native_bf16, expected):
    """bf16 only where the GPU has it natively (capability >= 8.0); a T4 gets fp16 + scaler."""
    asked = []

    def supported(including_emulation=True):
        asked.append(including_emulation)
        return native_bf16 or including_emulation       # emulation alone says yes on a T4

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert amp_dtype("cuda") == expected and asked == [False]   # fp16 trains with a GradScaler
    trainer = Trainer(GPT(tiny().model), TrainConfig(), "cpu", amp=True)
    assert amp_dtype("cpu") is None and trainer.amp is None and not trainer.scaler.is_enabled()


def test_shipped_runs_are_package_data():
    names = sorted(p.name for p in SHIPPED_RUNS.iterdir() if (p / "config.json").exists())
    assert len(names) == 7 and all(RunDir(SHIPPED_RUNS / n).finished for n in names)
    model = load_run(SHIPPED_RUNS / names[0])
    assert next(model.parameters()).dtype == torch.float32
