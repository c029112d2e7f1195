"""What decides a GPT run: :class:`RunConfig` (model, data, CoT steps, training), its record
and hash, and whether its training (or a scoring) fits in the memory a device has free.

A run's name and folder are :class:`RunConfig`'s hash (:meth:`RunConfig.run_id`), taken over
the fields that decide the result; ``ckpt_every``, ``compile`` and ``log_every`` do not.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checks import BadValue, check_choice, check_int, param
from ..gpt import GPTConfig, PRESETS, preset
from ..spectra import COV_HELP, check_cov_spec
from ..train import TrainConfig
from .options import options

MAX_PASSES = 10_000
"""The most CoT passes a run trains on (``cot_steps``) or is scored at (``EvalConfig.n_steps``)."""
MAX_LAYERS, MAX_DIMS = 1_000, 4_096
LATER_DEFAULTS = {"optimizer": "adam", "log_every": 10}
"""Fields added after v0.2.0: recorded only when changed, so that earlier runs keep their hash."""
NOT_HASHED = ("ckpt_every", "compile", "log_every")


def _run_default(name: str, value) -> dataclasses.Field:
    """:class:`TrainConfig`'s field ``name`` (its help) with a run's default ``value``."""
    meta = TrainConfig.__dataclass_fields__[name].metadata
    return dataclasses.field(default=value, metadata=meta)


@dataclass
class RunTrainConfig(TrainConfig):
    """A GPT run's training settings: :class:`TrainConfig`'s fields with the run's defaults
    (the only defaults a run has; ``warmup=None``: ``min(100, steps // 10)``)."""

    steps: int = _run_default("steps", 2500)
    batch_size: int = _run_default("batch_size", 64)
    lr: float = _run_default("lr", 1e-3)
    warmup: int | None = _run_default("warmup", None)


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
    (e.g. ``{"pos": "learned"}``), ``train`` a dict of :class:`RunTrainConfig` fields (or a
    :class:`TrainConfig`), which may also be given flat (``steps=..., lr=...``).
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
    train: RunTrainConfig = param(None, nested=RunTrainConfig)
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
            given = self.train if not isinstance(self.train, TrainConfig) \
                else dataclasses.asdict(self.train)
            self.train = RunTrainConfig(**(dict(given or {}) | flat))
        except BadValue as err:
            raise err.within("train") from None
        if isinstance(self.n_points, (tuple, list)):
            self.n_points = [check_int(v, "n_points") for v in self.n_points]
            if len(self.n_points) != 2 or self.n_points[0] > self.n_points[1]:
                raise BadValue("n_points", f"n_points range must be LO:HI with 1 <= LO <= HI, "
                                           f"got {self.n_points}")
        else:
            check_int(self.n_points, "n_points")
        check_int(self.cot_steps, "cot_steps", high=MAX_PASSES)
        check_int(self.ckpt_every, "ckpt_every")
        check_int(self.model.n_layer, "model.n_layer", high=MAX_LAYERS)
        check_int(self.model.n_dims, "model.n_dims", high=MAX_DIMS)  # before a d x d matrix
        check_cov_spec(check_text(self.train_cov, "train_cov"), self.model.n_dims, "train_cov")
        if self.model.pos == "learned" and self.max_points + self.cot_steps > self.model.max_len:
            raise BadValue("n_points", f"n + K = {self.max_points + self.cot_steps} exceeds "
                                       f"max_len = {self.model.max_len} (learned positions)")

    @property
    def max_points(self) -> int:
        return self.n_points[1] if isinstance(self.n_points, list) else self.n_points

    def record(self) -> dict:
        """The flat form saved as the run's config: the fields, ``model`` as its overrides of
        the preset (``pos`` always), ``train``'s fields in place; ``RunConfig(**record)``
        rebuilds it."""
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

    def n_points_at(self, batch: int) -> int:
        """Training context n of batch number ``batch``: a pure function of ``(seed, batch)``."""
        if isinstance(self.n_points, int):
            return self.n_points
        lo, hi = self.n_points
        return int(np.random.default_rng([self.train.seed, batch, 17]).integers(lo, hi + 1))


RUN_OPTIONS = options(RunConfig)


def check_text(value, name: str) -> str:
    """``value`` if it is text (a covariance spec, say); else ``BadValue``."""
    if not isinstance(value, str):
        raise BadValue(name, f"{name} must be text, got {value!r}")
    return value


# ---------------------------------------------------------------- will it fit?
def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (the CPU: MemAvailable), or ``None`` if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        text = Path("/proc/meminfo").read_text()
        return int(re.search(r"MemAvailable:\s+(\d+) kB", text).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def model_bytes(model: GPTConfig) -> int:
    """float32 parameters of a GPT of this shape (blocks, read-in/out, learned positions)."""
    width, d_tok = model.n_embd, 2 * model.n_dims + 2
    positions = model.max_len * width if model.pos == "learned" else 0
    return 4 * (model.n_layer * (12 * width**2 + 13 * width) + 2 * d_tok * width + positions)


def check_fits(need: int, device: torch.device, what: str, blame: str) -> None:
    """``BadValue(blame)`` before allocating, when ``need`` bytes exceed what ``device`` has."""
    free = free_memory(device)
    if free is not None and need > free:
        raise BadValue(blame, f"{what} needs about {need / 2**30:.3g} GiB, more than the "
                              f"{free / 2**30:.3g} GiB free on {device}: make it smaller")


def training_bytes(config: RunConfig) -> tuple[int, str]:
    """Memory a run's training needs (weights, gradients, Adam's two moments; activations of
    a batch over n + K + 1 tokens), and the field that makes it large."""
    m, b = config.model, config.train.batch_size
    tokens = config.max_points + config.cot_steps + 1
    act = 4 * b * tokens * m.n_layer * (20 * m.n_embd + 2 * m.n_head * tokens)
    ratios = {"model.n_layer": m.n_layer / 4, "model.n_embd": (m.n_embd / 64) ** 2,
              "model.n_dims": m.n_dims / 5, "train.batch_size": b / 64,
              "n_points": config.max_points / 10, "cot_steps": config.cot_steps / 8}
    return 4 * model_bytes(m) + act, max(ratios, key=ratios.get)
