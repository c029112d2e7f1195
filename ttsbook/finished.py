"""Finished GPT runs: load them (checked, one-line errors) and score them on fresh test prompts."""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import torch

from .checks import BadValue, check_int
from .evaluate import evaluate
from .gpt import GPT
from .options import options, param
from .runs import RunConfig
from .spectra import COV_HELP, check_cov_spec
from .tasks import make_task
from .utils import load_checkpoint, resolve_device, thread_policy

SHIPPED_RUNS = Path(str(resources.files("ttsbook") / "data" / "gpt"))
"""The finished GPT runs that ship inside the package (preset ``cpu``, d = 5); see its README."""


def load_config(path: str | Path) -> RunConfig:
    """The :class:`RunConfig` saved in a run directory (``BadValue`` if missing or corrupt)."""
    file = Path(path) / "config.json"
    try:
        return RunConfig(**json.loads(file.read_text()))
    except FileNotFoundError:
        raise BadValue("run", f"{file} is missing: {path} is not a run directory") from None
    except json.JSONDecodeError as err:
        raise BadValue("run", f"{file} is not valid JSON ({err})") from None
    except (TypeError, ValueError) as err:
        raise BadValue("run", f"{file} does not describe a run ({err})") from None


def load_run(path: str | Path, device: str | torch.device = "auto") -> GPT:
    """The trained model of a finished run directory, in eval mode."""
    path = Path(path)
    if not (path / "done").exists():
        raise BadValue("run", f"{path} is not a finished run (no 'done' marker)")
    model = GPT(load_config(path).model)
    load_checkpoint(path / "model.pt", model, arg="run")
    return model.to(resolve_device(device)).eval()


@dataclass
class EvalConfig:
    """How :func:`evaluate_runs` scores finished runs; every field is an option of ``evaluate``."""

    test_cov: str = param("isotropic", "test " + COV_HELP, metavar="SPEC")
    m: int = param(10, "examples per test prompt")
    k_max: int = param(20, "evaluate k = 1..K_MAX passes")
    n_prompts: int = param(2000, "test prompts")
    seed: int = param(1, "seed of the test prompts (drawn from the eval split, never a training "
                         "batch)")

    def __post_init__(self):
        for name in ("m", "k_max", "n_prompts"):
            check_int(getattr(self, name), name)
        check_int(self.seed, "seed", low=0)
        check_cov_spec(self.test_cov, arg="test_cov")


EVAL_OPTIONS = options(EvalConfig)


def evaluate_runs(paths, *args, device: str | torch.device = "auto", threads: int | None = None,
                  **kwargs) -> pd.DataFrame:
    """Error vs k of finished runs on the same test prompts, plus run metadata columns.

    ``args``/``kwargs`` are :class:`EvalConfig`'s fields (``test_cov, m, k_max, n_prompts,
    seed``). Columns: those of :func:`ttsbook.evaluate` and, typed, ``run`` (directory name),
    ``n`` (int: the training context; for a run trained on a range LO:HI the largest, HI),
    ``n_lo`` (int: the smallest, equal to ``n`` for a fixed context), ``train_cov``,
    ``cot_steps``, ``pos``, ``test_cov``, ``m``. Labels for plots: :func:`ttsbook.label_runs`.
    Every run is loaded (and checked) before any is scored.
    """
    spec, device = EvalConfig(*args, **kwargs), resolve_device(device)
    runs = [(Path(p), load_config(p), load_run(p, device)) for p in paths]
    frames = []
    for path, config, model in runs:
        task = make_task(check_cov_spec(spec.test_cov, model.config.n_dims, "test_cov"),
                         model.config.n_dims)
        with thread_policy(model, device, threads):
            df = evaluate({path.name: model}, task, spec.m, spec.k_max, n_prompts=spec.n_prompts,
                          seed=spec.seed, device=device)
        low = config.n_points[0] if isinstance(config.n_points, list) else config.n_points
        frames.append(df.assign(run=path.name, n=config.max_points, n_lo=low,
                                train_cov=config.train_cov, cot_steps=config.cot_steps,
                                pos=model.config.pos, test_cov=spec.test_cov, m=spec.m))
    return pd.concat(frames, ignore_index=True)
