"""Train a predictor on fresh batches: optimiser, lr schedule, progress bar, history."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch

from .tasks import Prompts, RegressionTask
from .utils import progress, resolve_device

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class TrainConfig:
    """Optimisation settings. Batch ``i`` is a pure function of ``(seed, i)``."""

    steps: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    optimizer: str = "adam"
    schedule: str = "cosine"
    warmup: int = 0
    seed: int = 0
    log_every: int = 10

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not isinstance(self.warmup, int) or not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup must be an integer in [0, steps), got {self.warmup!r}")

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at ``step``: linear warmup, then the chosen decay to 0."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        frac = (step - self.warmup) / max(self.steps - self.warmup, 1)
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * frac))
        return 1 - frac if self.schedule == "linear" else 1.0


def direct_loss(model, prompts: Prompts) -> torch.Tensor:
    """Direct prediction (k = 1) loss ``mean ||ŵ_1 − w||² / d``: the paper's training."""
    w_hat = model.predict(prompts, 1)[:, 0]
    return ((w_hat - prompts.w) ** 2).mean()


def train(model: torch.nn.Module, task: RegressionTask, n_points: int, config: TrainConfig,
          loss_fn: Callable = direct_loss, monitor: Callable | None = None,
          device: str | torch.device = "auto") -> pd.DataFrame:
    """Train ``model`` in place on prompts of ``n_points`` examples drawn from ``task``.

    Returns the history, one row per ``log_every`` steps: ``step, loss, lr`` and whatever
    ``monitor(model) -> dict`` adds (e.g. the distance to the closed form).
    """
    if task.n_dims != model.config.n_dims:
        raise ValueError(f"task has d = {task.n_dims}, but the model has n_dims = {model.config.n_dims}")
    device = resolve_device(device)
    model.to(device).train()
    dtype = next(model.parameters()).dtype
    opt = OPTIMIZERS[config.optimizer]([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, config.lr_factor)
    rows = []
    for step in (bar := progress(range(config.steps), desc="train")):
        prompts = task.sample(n_points, config.batch_size, config.seed, step, device=device, dtype=dtype)
        loss = loss_fn(model, prompts)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr (now {config.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % config.log_every == 0 or step == config.steps - 1:
            row = {"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
            rows.append(row | (monitor(model) if monitor else {}))
            bar.set_postfix(loss=f"{row['loss']:.4f}")
    model.eval()
    return pd.DataFrame(rows)
