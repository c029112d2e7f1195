"""GPT training runs that survive interruption: their config, their folder, the loop, loading.

A run lives in ``root/<name>-<hash>``, the hash taken over the :class:`RunConfig` fields that
decide the result. :class:`RunDir` is the one place the files of a run folder are named: the
config (:meth:`RunConfig.record`) beside the weights; every ``ckpt_every`` steps, and on Ctrl-C
at the end of the current step, a checkpoint (weights, optimiser state, RNG, step, history)
written atomically, so :func:`train_run` can resume: batch ``i`` is a pure function of
``(seed, i)``, so on the CPU a resumed run ends with weights bitwise equal to an uninterrupted
one. A finished run holds its weights, its history and a ``done`` marker, and asking for it
again does nothing. The training itself is :class:`ttsbook.train.Trainer` with
:func:`ttsbook.train.cot_loss`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no folder locks (one sweep per folder at a time)
    fcntl = None

import numpy as np
import pandas as pd
import torch

from ..checks import BadValue, check_choice, check_int, param
from ..gpt import GPT, GPTConfig, PRESETS, preset
from ..spectra import COV_HELP, check_cov_spec
from ..tasks import make_task
from ..train import TrainConfig, Trainer, cot_loss
from ..utils import (atomic_save, atomic_write, load_checkpoint, load_payload, load_weights,
                     resolve_device, save_checkpoint, writable_dir)
from .options import options

MAX_PASSES = 10_000
"""The most CoT passes a run trains on (``cot_steps``) or is evaluated at (``k_max``)."""
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


# ---------------------------------------------------------------- the folder
@dataclass(frozen=True)
class RunDir:
    """A run's folder, and the one place its files are named: ``config.json``,
    ``checkpoint.pt`` (while unfinished), ``model.pt``, ``history.csv``, the ``done`` marker
    and ``scores-<key>.csv``. Path-like: ``Path(run)``, ``open``, ``str(run)`` work."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, config: RunConfig, root: str | Path) -> "RunDir":
        """The folder of ``config``'s run under ``root``: ``<name>-<hash>``."""
        return cls(Path(root) / config.name())

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    config_file = property(lambda self: self.path / "config.json")
    checkpoint_file = property(lambda self: self.path / "checkpoint.pt")
    model_file = property(lambda self: self.path / "model.pt")
    history_file = property(lambda self: self.path / "history.csv")
    done_file = property(lambda self: self.path / "done")

    def scores_file(self, key: str) -> Path:
        """The score file of the evaluation setting whose hash is ``key``."""
        return self.path / f"scores-{key}.csv"

    @property
    def finished(self) -> bool:
        return self.done_file.exists()

    def remove_if_unstarted(self) -> None:
        """Remove this folder if it holds nothing but its config (a run that never got to a
        checkpoint): a later run then starts cleanly."""
        try:
            if {p.name for p in self.path.iterdir()} <= {self.config_file.name}:
                self.config_file.unlink(missing_ok=True)
                self.path.rmdir()
        except OSError:
            pass

    @contextmanager
    def lock(self):
        """Hold this run alone (an exclusive ``flock`` on its folder, created if needed): a
        second process that asks waits until the first is done, so two sweeps on one folder
        never train or score the same run twice. Released when the block ends, or the process
        dies."""
        self.path.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield self
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)

    def read_config(self) -> RunConfig:
        """The :class:`RunConfig` saved here (``BadValue`` naming ``run`` if missing or
        corrupt)."""
        file = self.config_file
        try:
            return RunConfig(**json.loads(file.read_text()))
        except FileNotFoundError:
            raise BadValue("run", f"{file} is missing: {self.path} is not a run directory") \
                from None
        except json.JSONDecodeError as err:
            raise BadValue("run", f"{file} is not valid JSON ({err})") from None
        except OSError as err:
            raise BadValue("run", f"{file} cannot be read ({err.strerror or err})") from None
        except (TypeError, ValueError) as err:
            raise BadValue("run", f"{file} does not describe a run ({err})") from None


# ---------------------------------------------------------------- training
class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`train_run` at ``step``; ``saved``: a checkpoint of it is in ``path``
    (not when a second Ctrl-C cut a step short: then the last periodic checkpoint stays)."""

    def __init__(self, path: Path, done: int, steps: int, saved: bool):
        where = ("checkpoint saved in" if saved
                 else "mid-step, so the last periodic checkpoint stays in")
        super().__init__(f"stopped at step {done} of {steps}; {where} {path}")
        self.path, self.step, self.steps, self.saved = path, done, steps, saved


def train_run(config: RunConfig, root: str | Path, device: str | torch.device = "auto",
              resume: bool = False, threads: int | None = None, hooks=()) -> RunDir:
    """Train (or resume, or skip) the run of ``config`` under ``root``; returns its folder.

    A finished run is skipped. A run with a partial checkpoint continues from it when
    ``resume`` is true and raises ``FileExistsError`` otherwise. ``hooks``: extra
    ``hook(trainer)`` called after each step, after the periodic checkpoint (a hook that raises
    ``KeyboardInterrupt`` is a Ctrl-C). Ctrl-C saves a checkpoint and raises
    :class:`RunInterrupted`; a NaN/inf loss raises ``FloatingPointError`` naming the step.
    """
    run = RunDir.of(config, root)
    if run.finished:
        return run
    device, (need, blame) = resolve_device(device), training_bytes(config)
    check_fits(need, device, "training this run", blame)
    fresh = not run.path.exists()
    writable_dir(run.path)
    try:
        with run.lock():  # another process may be training it: wait, then it is finished
            if not run.finished:
                _train(config, run, device, resume, threads, hooks)
    except BaseException:
        if fresh:  # a failed start leaves no folder behind (one with a checkpoint stays)
            run.remove_if_unstarted()
        raise
    return run


def _train(config: RunConfig, run: RunDir, device, resume: bool, threads, hooks) -> None:
    """:func:`train_run`'s work, in the locked folder ``run``."""
    ckpt = run.checkpoint_file
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{run} holds an interrupted run: add --resume (in Python "
                              "resume=True) to continue it, or delete that folder to start over")
    atomic_write(run.config_file,
                 lambda tmp: tmp.write_text(json.dumps(config.record(), indent=2) + "\n"))
    model = GPT(config.model)

    def checkpoint(trainer: Trainer) -> None:
        if trainer.steps_done % config.ckpt_every == 0 and trainer.steps_done < config.train.steps:
            save_checkpoint(ckpt, model, **trainer.state_dict())
    trainer = Trainer(model, config.train, device, amp=True, hooks=[checkpoint, *hooks],
                      threads=threads)
    if ckpt.exists():
        trainer.load_state_dict(load_checkpoint(ckpt, model, arg="resume"))
    compiled = config.compile and trainer.device.type == "cuda"
    loss = functools.partial(cot_loss, n_steps=config.cot_steps,
                             forward=torch.compile(model, dynamic=True) if compiled else model)
    try:
        trainer.fit(make_task(config.train_cov, config.model.n_dims), config.n_points_at, loss,
                    desc=run.name)
    except KeyboardInterrupt:
        if not trainer.in_step:  # a step boundary: a consistent point to resume from
            save_checkpoint(ckpt, model, **trainer.state_dict())
        raise RunInterrupted(run.path, trainer.steps_done, config.train.steps,
                             not trainer.in_step) from None
    save_checkpoint(run.model_file, model.cpu(), run_config=config.record())
    atomic_write(run.history_file,
                 lambda tmp: pd.DataFrame(trainer.history).to_csv(tmp, index=False))
    atomic_write(run.done_file, lambda tmp: tmp.write_text("complete\n"))
    ckpt.unlink(missing_ok=True)


# ---------------------------------------------------------------- loading
def load_config(path: str | Path) -> RunConfig:
    """The :class:`RunConfig` saved in a run folder (``BadValue`` if missing or corrupt)."""
    return RunDir(path).read_config()


def load_run(path: str | Path, device: str | torch.device = "auto") -> GPT:
    """The trained model of a finished run folder, in eval mode, once the folder's config
    agrees with the one stored beside the weights (which decide what the run is)."""
    run = RunDir(path)
    if not run.finished:
        raise BadValue("run", f"{run} is not a finished run (no 'done' marker)")
    config, payload = run.read_config(), load_payload(run.model_file, arg="run")
    _check_stored_config(run, config, payload.get("run_config"))
    model = GPT(config.model)
    load_weights(model, payload, run.model_file, arg="run")
    return model.to(resolve_device(device)).eval()


def _check_stored_config(run: RunDir, config: RunConfig, stored) -> None:
    """``BadValue`` naming the keys where the folder's config and the weights' differ."""
    where = f"{run.model_file.name} (the config the weights were trained with)"
    try:
        stored = RunConfig(**stored).record()
    except (TypeError, ValueError) as err:
        raise BadValue("run", f"{run.model_file} holds no valid run config ({err}); re-copy "
                              "the run") from None
    mine = config.record()
    if keys := sorted(k for k in set(stored) | set(mine)
                      if k not in NOT_HASHED and stored.get(k) != mine.get(k)):
        diff = ", ".join(f"{k}: {mine.get(k)!r} vs {stored.get(k)!r}" for k in keys)
        raise BadValue("run", f"{run.config_file} disagrees with {where} on {diff}; restore "
                              f"{run.config_file.name} or re-copy the run")


def export_half(path: str | Path) -> Path:
    """Rewrite a finished run's weights in float16: half the size, for committing.

    :func:`load_run` casts them back to float32, so evaluation differs from the float32 weights
    by float16 rounding only. Atomic, like every checkpoint write.
    """
    target = RunDir(path).model_file
    payload = load_payload(target, arg="run")
    state = payload["state_dict"]
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return atomic_save(payload, target)
