"""Train any predictor on fresh batches: one loop for the LSA and the GPT model.

:class:`Trainer` owns the optimiser, the learning-rate schedule, mixed precision and the
history. :meth:`Trainer.step` is one optimiser step on one batch; :meth:`Trainer.fit` runs the
steps that remain and calls every hook after each step (run checkpoints are a hook). Batch
``i`` is a pure function of ``(seed, i)``, so a loop restarted from :meth:`Trainer.state_dict`
ends with the weights of an uninterrupted one (bitwise on the CPU).

**CoT training (our recipe, not the paper's).** A decoder trained on direct prediction only
never sees an appended CoT token ``[0; 0; ŵ; 1]``, so its test-time CoT means nothing.
:func:`cot_loss` unrolls CoT with the model's *own* outputs fed back and supervises every step:

1. run the prompt ``[examples, query]`` once, with gradient: ``ŵ_1`` and a KV cache;
2. roll out ``ŵ_2 … ŵ_{K−1}`` from that cache without gradient (``GPT.extend`` under
   ``torch.inference_mode``, one token per pass);
3. run the ``K − 1`` CoT tokens ``[0; 0; ŵ_j; 1]`` with gradient against the cache of step 1;
4. loss = mean over the ``K`` read-outs (query and CoT tokens) of ``||ŵ_j − w||²/d``.

Steps 1 and 3 together are exactly one teacher-forced pass over all ``n + K`` tokens (a test
checks the gradients agree); the fed-back tokens carry no gradient, and ``K = 1`` is direct
prediction. The LSA (:class:`ttsbook.lsa.LSA`) takes the same loss from its ``predict``, and
only it also offers ``through_feedback=True``: the gradient flows through the fed-back ``ŵ``
as well, the exact gradient of the K-step loss (:mod:`ttsbook.theory.chain_training`).
Measured on an idle CPU with ``benchmarks/bench_cot_step.py`` (batch 64, K = 8), a
CoT step costs 1.54x / 1.47x / 1.28x a direct step over the same ``n + K`` tokens for
n = 5 / 10 / 15 with the ``cpu`` preset (one thread), and 1.26x / 1.21x / 1.20x for
n = 20 / 30 / 40 with ``paper`` (two threads): the rollout's one-token passes are overhead-bound.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch

from .checks import MAX_SEED, BadValue, check_choice, check_int, check_number, param
from .gpt import GPT, KVCache
from .tasks import Prompts, RegressionTask
from .tokens import cot_tokens, tokens
from .utils import amp_dtype, deferred_interrupt, progress, resolve_device, thread_policy

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
SCHEDULES = ("constant", "cosine", "linear")


def _warmup(text: str) -> int | None:
    return None if text == "auto" else int(text)


@dataclass
class TrainConfig:
    """Optimisation settings; every field is also a command-line option."""

    steps: int = param(1000, "optimiser steps")
    batch_size: int = param(256, "prompts per step")
    lr: float = param(0.01, "peak learning rate", show=repr)
    optimizer: str = param("adam", "optimiser", choices=tuple(OPTIMIZERS))
    schedule: str = param("cosine", "learning-rate decay to 0 after the warmup", choices=SCHEDULES)
    warmup: int | None = param(0, "steps of linear warmup; auto (None): min(100, steps // 10)",
                               parse=_warmup, metavar="N|auto")
    seed: int = param(0, "seed of the training batches: batch i is a pure function of (seed, i)")
    log_every: int = param(10, "steps between two rows of the history")

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every"):
            check_int(getattr(self, name), name)
        check_number(self.lr, "lr", 0, strict=True, high=1e10)  # finite, far past sane
        check_choice(self.optimizer, "optimizer", tuple(OPTIMIZERS))
        check_choice(self.schedule, "schedule", SCHEDULES)
        check_int(self.seed, "seed", low=0, high=MAX_SEED)
        if self.warmup is None:
            self.warmup = min(100, self.steps // 10)
        if check_int(self.warmup, "warmup", low=0) >= self.steps:
            raise BadValue("warmup", f"warmup must be below steps = {self.steps}, "
                                     f"got {self.warmup}")

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at ``step``: linear warmup, then the chosen decay to 0."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        frac = (step - self.warmup) / max(self.steps - self.warmup, 1)
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * frac))
        return 1 - frac if self.schedule == "linear" else 1.0


# ---------------------------------------------------------------- losses
def direct_loss(model, prompts: Prompts) -> torch.Tensor:
    """Direct prediction (k = 1) loss ``mean ||ŵ_1 − w||² / d``: the paper's training."""
    w_hat = model.predict(prompts, 1)[:, 0]
    return ((w_hat - prompts.w) ** 2).mean()


def cot_loss(model, prompts: Prompts, n_steps: int, forward=None, *,
             through_feedback: bool = False) -> torch.Tensor:
    """Mean over ``n_steps`` = K read-outs of ``||ŵ_j − w||²/d`` (see the module docstring).

    ``model``: the GPT, or the LSA (any model whose ``predict`` takes ``feedback_grad``).
    ``forward`` is the (possibly compiled) module used for the GPT's passes that carry
    gradient. ``through_feedback`` (LSA only): back-propagate through the fed-back ``ŵ`` too.
    """
    if not isinstance(model, GPT):
        w_hat = model.predict(prompts, n_steps, feedback_grad=through_feedback)
        return ((w_hat - prompts.w[:, None, :].to(w_hat)) ** 2).mean()
    if through_feedback:
        raise BadValue("through_feedback", "through_feedback=True needs an LSA; the GPT's "
                                           "CoT training always stops the gradient")
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


# ---------------------------------------------------------------- the loop
class Trainer:
    """Trains ``model`` in place: :meth:`step` per batch, every hook ``hook(trainer)`` after it.

    ``amp``: on CUDA, autocast in :func:`ttsbook.utils.amp_dtype`'s dtype (bf16 where the GPU
    has it natively, else fp16 with a gradient scaler); the CPU always trains in float32.
    ``threads``: CPU threads (default: :func:`ttsbook.utils.thread_policy`).
    """

    def __init__(self, model: torch.nn.Module, config: TrainConfig,
                 device: str | torch.device = "auto", *,
                 amp: bool = False, hooks=(), threads: int | None = None):
        self.model, self.config, self.device = model, config, resolve_device(device)
        self.hooks, self.threads = list(hooks), threads
        model.to(self.device).train()
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = OPTIMIZERS[config.optimizer](params, lr=config.lr)
        self.amp = amp_dtype(self.device) if amp else None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.steps_done, self.history, self.in_step = 0, [], False

    def step(self, prompts: Prompts, loss_fn: Callable = direct_loss) -> torch.Tensor:
        """One optimiser step on ``prompts`` at the scheduled lr; returns the loss before it.

        ``in_step`` stays true if it is cut short: the model and optimiser are then half-updated.
        """
        self.in_step = True
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * self.config.lr_factor(self.steps_done)
        with torch.autocast(self.device.type, dtype=self.amp) if self.amp else nullcontext():
            loss = loss_fn(self.model, prompts)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.steps_done}; "
                                     f"try a lower lr (now {self.config.lr:g})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.steps_done, self.in_step = self.steps_done + 1, False
        return loss

    def fit(self, task: RegressionTask, n, loss_fn: Callable = direct_loss,
            monitor: Callable | None = None, desc: str = "train") -> pd.DataFrame:
        """Run the remaining steps on prompts of ``n_points`` examples (an int, or step -> n)
        drawn from ``task``; returns the history. Ctrl-C stops at the end of a step
        (``KeyboardInterrupt``), so :meth:`state_dict` is then a consistent point to resume from.
        """
        config, dtype = self.config, next(self.model.parameters()).dtype
        n_at = n if callable(n) else (lambda step: n)
        bar = progress(range(self.steps_done, config.steps), desc=desc, initial=self.steps_done,
                       total=config.steps)
        with thread_policy(self.model, self.device, self.threads), deferred_interrupt() as stop:
            for step in bar:
                prompts = task.sample(n_at(step), config.batch_size, config.seed, step,
                                      device=self.device, dtype=dtype)
                loss = self.step(prompts, loss_fn)
                if step % config.log_every == 0 or step == config.steps - 1:
                    row = {"step": step, "loss": loss.item(),
                           "lr": self.optimizer.param_groups[0]["lr"]}
                    row |= {"n": prompts.n_points} if callable(n) else {}
                    self.history.append(row | (monitor(self.model) if monitor else {}))
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                for hook in self.hooks:
                    hook(self)
                if stop():
                    raise KeyboardInterrupt
        self.model.eval()
        return pd.DataFrame(self.history)

    def state_dict(self) -> dict:
        """What resuming needs besides the weights: optimiser, scaler, RNG, step, history."""
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": torch.get_rng_state(), "step": self.steps_done,
                "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])  # cast to the parameters' device
        if state.get("scaler"):  # empty when the scaler is off (bf16, float32)
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        self.steps_done, self.history = state["step"], list(state["history"])


def train(model: torch.nn.Module, task: RegressionTask, n: int, config: TrainConfig,
          loss_fn: Callable = direct_loss, monitor: Callable | None = None,
          device: str | torch.device = "auto", threads: int | None = None) -> pd.DataFrame:
    """Train ``model`` in place on prompts of ``n_points`` examples drawn from ``task``.

    Returns the history, one row per ``log_every`` steps: ``step, loss, lr`` and whatever
    ``monitor(model) -> dict`` adds (e.g. the distance to the closed form).
    """
    if task.n_dims != model.config.n_dims:
        raise ValueError(f"task has d = {task.n_dims}, "
                         f"but the model has n_dims = {model.config.n_dims}")
    return Trainer(model, config, device, threads=threads).fit(task, n, loss_fn, monitor)
