"""GPT training runs that survive interruption: their config, directory, command line and loop.

A run lives in ``root/<name>-<hash>``, the hash taken over the :class:`RunConfig` fields that
decide the result; ``config.json`` (:meth:`RunConfig.record`) sits beside the weights. Every
``ckpt_every`` steps, and on Ctrl-C at the end of the current step, ``checkpoint.pt`` (weights,
optimiser state, RNG, step, history) is written atomically, so :func:`train_run` can resume:
batch ``i`` is a pure function of ``(seed, i)``, so on the CPU a resumed run ends with weights
bitwise equal to an uninterrupted one. A finished run holds ``model.pt``, ``history.csv`` and a
``done`` marker, and asking for it again does nothing. The training itself is
:class:`ttsbook.train.Trainer` with :func:`ttsbook.train.cot_loss`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .checks import BadValue, check_choice, check_int
from .gpt import GPT, GPTConfig, PRESETS, preset
from .options import options, param, to_argv
from .spectra import COV_HELP, check_cov_spec
from .tasks import make_task
from .train import TrainConfig, Trainer, cot_loss
from .utils import atomic_save, load_checkpoint, save_checkpoint, writable_dir

RUN_TRAIN = {"steps": 2500, "batch_size": 64, "lr": 1e-3, "warmup": None}
"""A run's training defaults where they differ from :class:`TrainConfig`'s (``None``: auto)."""
LATER_DEFAULTS = {"optimizer": "adam", "log_every": 10}
"""Fields added after v0.2.0: recorded only when changed, so that earlier runs keep their hash."""
NOT_HASHED = ("ckpt_every", "compile", "log_every")


def _n_points_arg(text: str) -> int | list:
    """``"10"`` -> 10; ``"5:15"`` -> [5, 15]."""
    parts = [int(v) for v in text.split(":")]
    return parts[0] if len(parts) == 1 else parts


def _n_points_text(value) -> str:
    return ":".join(map(str, value)) if isinstance(value, list) else str(value)


@dataclass(init=False)
class RunConfig:
    """Everything that decides a CoT training run of the GPT model; every field is an option.

    Takes the fields as keywords. ``model`` may be a dict of overrides of the ``preset``
    (e.g. ``{"pos": "learned"}``), ``train`` a dict of :class:`TrainConfig` fields, which may also
    be given flat (``steps=..., lr=...``); training fields not given take ``RUN_TRAIN``'s values.
    """

    preset: str = param("cpu", "model size: the defaults of the model options",
                        choices=tuple(PRESETS))
    model: GPTConfig = param(None, nested=GPTConfig)
    n_points: int | list = param(10, "training context n, or LO:HI: n drawn uniformly per batch "
                                     "(a pure function of (seed, step); for learned positions)",
                                 parse=_n_points_arg, show=_n_points_text, metavar="N|LO:HI")
    train_cov: str = param("isotropic", "training " + COV_HELP, metavar="SPEC")
    cot_steps: int = param(8, "K: supervised passes per prompt (1 = direct prediction)",
                           metavar="K")
    train: TrainConfig = param(None, nested=TrainConfig)
    ckpt_every: int = param(250, "steps between checkpoints (does not change the result)")
    compile: bool = param(False, "torch.compile the model on CUDA (does not change the result)")

    def __init__(self, **fields):
        own = {f.name: f.default for f in dataclasses.fields(self)}
        flat = {k: fields.pop(k) for k in list(fields) if k not in own}
        if unknown := sorted(set(flat) - {f.name for f in dataclasses.fields(TrainConfig)}):
            raise TypeError(f"RunConfig got unexpected fields {unknown}")
        for name, default in own.items():
            setattr(self, name, fields.get(name, default))
        self._check(flat)

    def _check(self, flat: dict) -> None:
        check_choice(self.preset, "preset", tuple(PRESETS))
        try:
            if not isinstance(self.model, GPTConfig):
                self.model = preset(self.preset, **dict(self.model or {}))
        except BadValue as err:
            raise err.within("model") from None
        try:
            if isinstance(self.train, TrainConfig):
                self.train = dataclasses.replace(self.train, **flat)
            else:
                self.train = TrainConfig(**(RUN_TRAIN | dict(self.train or {}) | flat))
        except BadValue as err:
            raise err.within("train") from None
        if isinstance(self.n_points, (tuple, list)):
            self.n_points = [check_int(v, "n_points") for v in self.n_points]
            if len(self.n_points) != 2 or self.n_points[0] > self.n_points[1]:
                raise BadValue("n_points", f"n_points range must be LO:HI with 1 <= LO <= HI, "
                                           f"got {self.n_points}")
        else:
            check_int(self.n_points, "n_points")
        check_int(self.cot_steps, "cot_steps")
        check_int(self.ckpt_every, "ckpt_every")
        check_cov_spec(self.train_cov, self.model.n_dims, "train_cov")
        if self.model.pos == "learned" and self.max_points + self.cot_steps > self.model.max_len:
            raise BadValue("n_points", f"n + K = {self.max_points + self.cot_steps} exceeds "
                                       f"max_len = {self.model.max_len} (learned positions)")

    @property
    def max_points(self) -> int:
        return self.n_points[1] if isinstance(self.n_points, list) else self.n_points

    def record(self) -> dict:
        """The flat form saved as ``config.json``: the fields, ``model`` as its overrides of the
        preset (``pos`` always), ``train``'s fields in place; ``RunConfig(**record)`` rebuilds
        it."""
        base, out = PRESETS[self.preset], {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "model":
                out["model"] = ({"pos": value.pos}
                                | {k: v for k, v in dataclasses.asdict(value).items()
                                   if v != getattr(base, k)})
            elif f.name == "train":
                out |= {k: v for k, v in dataclasses.asdict(value).items()
                        if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}
            else:
                out[f.name] = list(value) if isinstance(value, list) else value
        return out

    def run_id(self) -> str:
        """Short hash of the fields that decide the result."""
        fields = {k: v for k, v in self.record().items() if k not in NOT_HASHED}
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]

    def name(self) -> str:
        cov = re.sub(r"[^A-Za-z0-9.]+", "", self.train_cov)
        return (f"{self.preset}-n{_n_points_text(self.n_points).replace(':', '-')}-{cov}"
                f"-k{self.cot_steps}-{self.run_id()}")

    def n_points_at(self, step: int) -> int:
        """Training context n of batch ``step``: a pure function of ``(seed, step)``."""
        if isinstance(self.n_points, int):
            return self.n_points
        lo, hi = self.n_points
        return int(np.random.default_rng([self.train.seed, step, 17]).integers(lo, hi + 1))


RUN_OPTIONS = options(RunConfig)


def run_dir(config: RunConfig, root: str | Path) -> Path:
    """The directory of ``config``'s run under ``root``: ``<name>-<hash>``."""
    return Path(root) / config.name()


def train_argv(config: RunConfig) -> list[str]:
    """CLI arguments of ``python -m ttsbook train`` that reproduce ``config`` (add ``--out``)."""
    own = {f.name for f in dataclasses.fields(RunConfig)}
    pairs = []
    for key, value in config.record().items():
        if key == "model":
            pairs += [(("model", k), v) for k, v in value.items()]
        else:
            pairs.append(((key,) if key in own else ("train", key), value))
    return ["train", *to_argv(pairs, RUN_OPTIONS)]


# ---------------------------------------------------------------- training
class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`train_run` at ``step``; ``saved``: a checkpoint of it is in ``path``
    (not when a second Ctrl-C cut a step short: then the last periodic checkpoint stays)."""

    def __init__(self, path: Path, step: int, steps: int, saved: bool):
        where = ("checkpoint saved in" if saved
                 else "mid-step, so the last periodic checkpoint stays in")
        super().__init__(f"stopped at step {step} of {steps}; {where} {path}")
        self.path, self.step, self.steps, self.saved = path, step, steps, saved


def train_run(config: RunConfig, root: str | Path, device: str | torch.device = "auto",
              resume: bool = False, threads: int | None = None) -> Path:
    """Train (or resume, or skip) the run of ``config`` under ``root``; returns its directory.

    A finished run (``done`` marker) is skipped. A run with a partial ``checkpoint.pt``
    continues from it when ``resume`` is true and raises ``FileExistsError`` otherwise. Ctrl-C
    saves a checkpoint and raises :class:`RunInterrupted`; a NaN/inf loss raises
    ``FloatingPointError`` naming the step.
    """
    out = run_dir(config, root)
    if (out / "done").exists():
        return out
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{out} holds an interrupted run: add --resume (in Python "
                              "resume=True) to continue it, or delete that folder to start over")
    (writable_dir(out) / "config.json").write_text(json.dumps(config.record(), indent=2) + "\n")
    model = GPT(config.model)

    def checkpoint(trainer: Trainer) -> None:
        if trainer.steps_done % config.ckpt_every == 0 and trainer.steps_done < config.train.steps:
            save_checkpoint(ckpt, model, **trainer.state_dict())
    trainer = Trainer(model, config.train, device, amp=True, hooks=[checkpoint], threads=threads)
    if ckpt.exists():
        trainer.load_state_dict(load_checkpoint(ckpt, model, arg="resume"))
    compiled = config.compile and trainer.device.type == "cuda"
    loss = functools.partial(cot_loss, n_steps=config.cot_steps,
                             forward=torch.compile(model, dynamic=True) if compiled else model)
    try:
        trainer.fit(make_task(config.train_cov, config.model.n_dims), config.n_points_at, loss,
                    desc=out.name)
    except KeyboardInterrupt:
        if not trainer.in_step:  # a step boundary: a consistent point to resume from
            save_checkpoint(ckpt, model, **trainer.state_dict())
        raise RunInterrupted(out, trainer.steps_done, config.train.steps,
                             not trainer.in_step) from None
    save_checkpoint(out / "model.pt", model.cpu(), run_config=config.record())
    pd.DataFrame(trainer.history).to_csv(out / "history.csv", index=False)
    (out / "done").write_text("complete\n")
    ckpt.unlink(missing_ok=True)
    return out


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
