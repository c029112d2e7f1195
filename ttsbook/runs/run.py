"""GPT training runs that survive interruption: their folder, the loop, loading.

A run lives in ``root/<name>-<hash>`` (:class:`~ttsbook.runs.config.RunConfig`).
:class:`RunDir` is the one place the files of a run folder are named: the config
(:meth:`RunConfig.record`) beside the weights; every ``ckpt_every`` steps, and on Ctrl-C at the
end of the current step, a checkpoint (weights, optimiser state, RNG, step, history) written
atomically, so :func:`train_run` can resume: batch ``i`` is a pure function of ``(seed, i)``,
so on the CPU a resumed run ends with weights bitwise equal to an uninterrupted one. A finished
run holds its weights, its history and a ``done`` marker, and asking for it again does nothing.
The training itself is :class:`ttsbook.train.Trainer` with :func:`ttsbook.train.cot_loss`.
"""
from __future__ import annotations

import functools
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no folder locks (one sweep per folder at a time)
    fcntl = None

import pandas as pd
import torch

from ..checks import BadValue
from ..gpt import GPT
from ..tasks import make_task
from ..train import Trainer, cot_loss
from ..utils import (atomic_save, atomic_write, load_checkpoint, load_payload, load_weights,
                     resolve_device, save_checkpoint, writable_dir)
from .config import NOT_HASHED, RunConfig, check_fits, training_bytes

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
