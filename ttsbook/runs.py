"""Train the GPT model with test-time CoT, in runs that survive interruption.

**CoT training (our recipe, not the paper's).** A decoder trained on direct prediction only
never sees an appended CoT token ``[0; 0; ŵ; 1]``, so its test-time CoT means nothing. We
unroll CoT with the model's *own* outputs fed back and supervise every step toward ``w``:

1. run the prompt ``[examples, query]`` once, with gradient: ``ŵ_1`` and a KV cache;
2. roll out ``ŵ_2 … ŵ_{K−1}`` from that cache without gradient (``GPT.extend`` under
   ``torch.inference_mode``, one token per pass);
3. run the ``K − 1`` CoT tokens ``[0; 0; ŵ_j; 1]`` with gradient against the cache of step 1;
4. loss = mean over the ``K`` read-outs (query and CoT tokens) of ``||ŵ_j − w||²/d``.

Steps 1 and 3 together are exactly one teacher-forced pass over all ``n + K`` tokens (a test
checks the gradients agree); the fed-back tokens carry no gradient (a stop-gradient on the
rollout), and ``K = 1`` is plain direct prediction. Measured on an idle CPU with
``benchmarks/bench_cot_step.py`` (batch 64, K = 8), a CoT step costs 1.54x / 1.47x / 1.28x a
direct step over the same ``n + K`` tokens for n = 5 / 10 / 15 with the ``cpu`` preset (one
thread), and 1.26x / 1.21x / 1.20x for n = 20 / 30 / 40 with ``paper`` (two threads): the
rollout's one-token passes are overhead-bound at the tiny sizes.

**Runs.** A run lives in ``root/<name>-<hash>``, the hash taken over the :class:`RunConfig`
fields that decide the result; ``config.json`` sits beside the weights. Every
``ckpt_every`` steps ``checkpoint.pt`` (weights, Adam state, RNG, step, history) is written
atomically, so :func:`train_run` can resume: batch ``i`` is a pure function of
``(seed, i)``, so on the CPU a resumed run ends with weights bitwise equal to an
uninterrupted one. A finished run holds ``model.pt``, ``history.csv`` and a ``done`` marker,
and asking for it again does nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from contextlib import nullcontext
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .evaluate import evaluate
from .gpt import GPT, GPTConfig, KVCache, PRESETS, preset, tokens
from .spectra import check_cov_spec
from .tasks import Prompts, make_task
from .train import TrainConfig
from .utils import amp_dtype, atomic_save, load_checkpoint, progress, resolve_device, save_checkpoint

# ---------------------------------------------------------------- run config
@dataclass
class RunConfig:
    """Everything that decides a CoT training run of the GPT model.

    ``model`` overrides fields of the ``preset`` (e.g. ``{"pos": "learned"}``).
    ``n_points`` is a fixed training context n, or ``[lo, hi]``: n drawn uniformly per batch
    (a pure function of ``(seed, step)``; useful with learned positions).
    ``cot_steps`` is K, the number of supervised passes (K = 1: direct prediction).
    ``ckpt_every`` and ``compile`` do not change the result and are left out of the hash.
    """

    preset: str = "cpu"
    model: dict = field(default_factory=dict)
    n_points: int | list = 10
    train_cov: str = "isotropic"
    cot_steps: int = 8
    steps: int = 2500
    batch_size: int = 64
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup: int = 100
    seed: int = 0
    ckpt_every: int = 250
    compile: bool = False

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        self.model = dict(self.model)
        if isinstance(self.n_points, (tuple, list)):
            self.n_points = [int(v) for v in self.n_points]
            if len(self.n_points) != 2 or not 1 <= self.n_points[0] <= self.n_points[1]:
                raise ValueError(f"n_points range must be [lo, hi] with 1 <= lo <= hi, got {self.n_points}")
        elif not isinstance(self.n_points, int) or self.n_points < 1:
            raise ValueError(f"n_points must be an integer >= 1 or [lo, hi], got {self.n_points!r}")
        for name in ("cot_steps", "ckpt_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        check_cov_spec(self.train_cov)
        self.train_config()  # validates steps, batch_size, lr, schedule, warmup
        cfg = self.gpt_config()  # validates the model overrides
        if cfg.pos == "learned" and self.max_points + self.cot_steps > cfg.max_len:
            raise ValueError(f"n + K = {self.max_points + self.cot_steps} exceeds max_len = {cfg.max_len}")

    @property
    def max_points(self) -> int:
        return self.n_points[1] if isinstance(self.n_points, list) else self.n_points

    def gpt_config(self) -> GPTConfig:
        unknown = set(self.model) - {f.name for f in dataclasses.fields(GPTConfig)}
        if unknown:
            raise ValueError(f"model overrides {sorted(unknown)} are not GPTConfig fields")
        return preset(self.preset, **self.model)

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           schedule=self.schedule, warmup=self.warmup, seed=self.seed)

    def run_id(self) -> str:
        """Short hash of the fields that decide the result."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("ckpt_every", "compile")}
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]

    def name(self) -> str:
        n = "-".join(map(str, self.n_points)) if isinstance(self.n_points, list) else self.n_points
        cov = re.sub(r"[^A-Za-z0-9.]+", "", self.train_cov)
        return f"{self.preset}-n{n}-{cov}-k{self.cot_steps}-{self.run_id()}"

    def n_points_at(self, step: int) -> int:
        """Training context n of batch ``step``: a pure function of ``(seed, step)``."""
        if isinstance(self.n_points, int):
            return self.n_points
        lo, hi = self.n_points
        return int(np.random.default_rng([self.seed, step, 17]).integers(lo, hi + 1))


def run_dir(config: RunConfig, root: str | Path) -> Path:
    """The directory of ``config``'s run under ``root``: ``<name>-<hash>``."""
    return Path(root) / config.name()


def train_argv(config: RunConfig) -> list[str]:
    """CLI arguments of ``python -m ttsbook train`` that reproduce ``config`` (add ``--out``)."""
    if set(config.model) - {"pos"}:
        raise ValueError(f"the CLI sets only the 'pos' model override, got {sorted(config.model)}")
    n = ":".join(map(str, config.n_points)) if isinstance(config.n_points, list) else config.n_points
    argv = ["train", "--preset", config.preset, "--pos", config.model.get("pos", "none"),
            "--n-points", str(n), "--train-cov", config.train_cov, "--cot-steps", str(config.cot_steps),
            "--steps", str(config.steps), "--batch-size", str(config.batch_size), "--lr", f"{config.lr:g}",
            "--schedule", config.schedule, "--warmup", str(config.warmup), "--seed", str(config.seed),
            "--ckpt-every", str(config.ckpt_every)]
    return argv + (["--compile"] if config.compile else [])


# ---------------------------------------------------------------- the CoT loss
def cot_tokens(w_hat: torch.Tensor) -> torch.Tensor:
    """CoT tokens ``[0; 0; ŵ; 1]`` for a batch of iterates: (B, K, d) -> (B, K, 2d + 2)."""
    B, K, d = w_hat.shape
    return torch.cat([w_hat.new_zeros(B, K, d + 1), w_hat, w_hat.new_ones(B, K, 1)], dim=-1)


def cot_loss(model: GPT, prompts: Prompts, n_steps: int, forward=None) -> torch.Tensor:
    """Mean over the ``n_steps`` read-outs of ``||ŵ_j − w||²/d`` (see the module docstring).

    ``forward`` is the (possibly compiled) module used for the passes that carry gradient.
    """
    n, run = prompts.n_points, model if forward is None else forward
    tok = tokens(prompts)                                  # (B, n + 1, D)
    if n_steps == 1:
        w_hat = run(tok)[:, n:]                            # (B, 1, d): direct prediction
    else:
        out, cache = run(tok, KVCache())                   # the prompt, once, with gradient
        with torch.inference_mode():                       # self-fed rollout, stop-gradient
            w_cot = model.extend(out[:, -1], cache, n_steps - 2)               # ŵ_2 … ŵ_{K-1}
        w_cot = torch.cat([out[:, -1:].detach(), w_cot], dim=1).to(tok.dtype)  # (B, K - 1, d)
        rest, _ = run(cot_tokens(w_cot), cache)            # the K - 1 CoT tokens, with gradient
        w_hat = torch.cat([out[:, -1:], rest], dim=1)      # (B, K, d): query + CoT read-outs
    return ((w_hat.float() - prompts.w[:, None, :]) ** 2).mean()


# ---------------------------------------------------------------- runs
SHIPPED_RUNS = Path(str(resources.files("ttsbook") / "data" / "gpt"))
"""The finished GPT runs that ship inside the package (preset ``cpu``, d = 5); see its README."""


def _autocast(device: torch.device):
    """Autocast in :func:`ttsbook.utils.amp_dtype`'s dtype (bf16 or fp16) on CUDA; else nothing."""
    dtype = amp_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 (bf16 and float32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


def train_run(config: RunConfig, root: str | Path, device: str | torch.device = "auto",
              resume: bool = False, log_every: int = 10) -> Path:
    """Train (or resume, or skip) the run of ``config`` under ``root``; returns its directory.

    A finished run (``done`` marker) is skipped. A run with a partial ``checkpoint.pt``
    continues from it when ``resume`` is true and raises ``FileExistsError`` otherwise.
    A NaN/inf loss raises ``FloatingPointError`` naming the step.
    """
    out = run_dir(config, root)
    if (out / "done").exists():
        return out
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{out.name} holds an interrupted run; resume it (--resume) or delete it")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    device = resolve_device(device)
    model = GPT(config.gpt_config())
    state = load_checkpoint(ckpt, model) if ckpt.exists() else None
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    start, history = 0, []
    if state is not None:  # Adam's state is cast to the parameters' device on load
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start, history = state["step"], state["history"]
    scaler = _grad_scaler(device)
    if state is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    forward = torch.compile(model, dynamic=True) if config.compile and device.type == "cuda" else model
    task, sched = make_task(config.train_cov, model.config.n_dims), config.train_config()
    for step in progress(range(start, config.steps), desc=out.name, initial=start, total=config.steps):
        for group in opt.param_groups:
            group["lr"] = config.lr * sched.lr_factor(step)
        prompts = task.sample(config.n_points_at(step), config.batch_size, config.seed, step, device=device)
        with _autocast(device):
            loss = cot_loss(model, prompts, config.cot_steps, forward)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step} of run {out.name}; "
                                     f"try a lower lr (now {config.lr:g})")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if step % log_every == 0 or step == config.steps - 1:
            history.append({"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"],
                            "n_points": prompts.n_points})
        if (step + 1) % config.ckpt_every == 0 and step + 1 < config.steps:
            save_checkpoint(ckpt, model, optimizer=opt.state_dict(), rng=torch.get_rng_state(),
                            scaler=scaler.state_dict(),
                            step=step + 1, history=history)
    _finish(out, model, config, history)
    return out


def _finish(out: Path, model: GPT, config: RunConfig, history: list) -> None:
    """Write the final weights, history and ``done`` marker; drop the resumable state."""
    save_checkpoint(out / "model.pt", model.cpu(), run_config=dataclasses.asdict(config))
    pd.DataFrame(history).to_csv(out / "history.csv", index=False)
    (out / "done").write_text("complete\n")
    (out / "checkpoint.pt").unlink(missing_ok=True)


def export_half(path: str | Path) -> Path:
    """Rewrite a finished run's ``model.pt`` with float16 weights: half the size, for committing.

    :func:`load_run` casts them back to float32, so evaluation differs from the float32 weights
    by float16 rounding only. Atomic, like every checkpoint write.
    """
    target = Path(path) / "model.pt"
    payload = torch.load(target, map_location="cpu", weights_only=False)
    state = payload["state_dict"]
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return atomic_save(payload, target)


def load_config(path: str | Path) -> RunConfig:
    """The :class:`RunConfig` saved in a run directory."""
    return RunConfig(**json.loads((Path(path) / "config.json").read_text()))


def load_run(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """The trained model of a finished run directory, in eval mode."""
    path = Path(path)
    if not (path / "done").exists():
        raise FileNotFoundError(f"{path.name} is not a finished run (no 'done' marker)")
    model = GPT(load_config(path).gpt_config())
    load_checkpoint(path / "model.pt", model)
    return model.to(resolve_device(device)).eval()


def evaluate_runs(paths, test_cov: str = "isotropic", m: int = 10, k_max: int = 20,
                  n_prompts: int = 2000, seed: int = 1, device: str | torch.device = "cpu") -> pd.DataFrame:
    """Error vs k of finished runs on the same test prompts, plus run metadata columns.

    Columns: those of :func:`ttsbook.evaluate` and ``run, train_n, train_cov, cot_steps, pos,
    test_cov, m``. The evaluation seed should differ from the training seeds.
    """
    frames = []
    for path in map(Path, paths):
        config, model = load_config(path), load_run(path, device)
        task = make_task(test_cov, model.config.n_dims)
        df = evaluate({path.name: model}, task, m, k_max, n_prompts=n_prompts, seed=seed, device=device)
        frames.append(df.assign(run=path.name, train_n=str(config.n_points), train_cov=config.train_cov,
                                cot_steps=config.cot_steps, pos=model.config.pos, test_cov=test_cov, m=m))
    return pd.concat(frames, ignore_index=True)
