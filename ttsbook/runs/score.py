"""Finished GPT runs scored on fresh test prompts: the setting, the scores, their files, labels."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from ..checks import MAX_SEED, check_int, param
from ..evaluate import evaluate
from ..spectra import COV_HELP, check_cov_spec
from ..tasks import make_task
from ..utils import resolve_device, thread_policy
from .options import options
from .config import MAX_PASSES, check_fits, check_text, model_bytes
from .run import RunDir, load_config, load_run

SHIPPED_RUNS = Path(str(resources.files("ttsbook") / "data" / "gpt"))
"""The finished GPT runs that ship inside the package (preset ``cpu``, d = 5); see its README."""


@dataclass
class EvalConfig:
    """How :func:`evaluate_runs` scores finished runs; every field is an option of ``evaluate``
    and ``sweep`` (``seed`` is ``--eval-seed`` in both, never taken for a training seed)."""

    test_cov: str = param("isotropic", "test " + COV_HELP, metavar="SPEC")
    m: int = param(10, "examples per test prompt")
    n_steps: int = param(20, "evaluate k = 1..K passes", metavar="K")
    n_prompts: int = param(2000, "test prompts")
    seed: int = param(1, "seed of the test prompts (drawn from the eval split, never a training "
                         "batch)", flag="--eval-seed", metavar="SEED")

    def __post_init__(self):
        for name in ("m", "n_prompts"):
            check_int(getattr(self, name), name)
        check_int(self.n_steps, "n_steps", high=MAX_PASSES)
        check_int(self.seed, "seed", low=0, high=MAX_SEED)
        check_cov_spec(check_text(self.test_cov, "test_cov"), arg="test_cov")

    def bytes_for(self, model) -> tuple[int, str]:
        """Memory scoring ``model`` (a GPTConfig) needs, all prompts at once (float64 prompts
        and iterates, the KV cache and one layer's activations over m + 1 + K tokens), and the
        field that makes it large."""
        tokens, b, width = self.m + 1 + self.n_steps, self.n_prompts, model.n_embd
        need = 8 * b * (tokens * (2 * model.n_dims + 2) + 2 * self.n_steps * model.n_dims) \
            + 4 * b * tokens * (2 * model.n_layer * width + 8 * width + model.n_head * tokens)
        ratios = {"n_prompts": b / 2000, "m": self.m / 10, "n_steps": self.n_steps / 20}
        return need + model_bytes(model), max(ratios, key=ratios.get)


EVAL_OPTIONS = options(EvalConfig)


def evaluate_runs(paths, *args, device: str | torch.device = "auto", threads: int | None = None,
                  **kwargs) -> pd.DataFrame:
    """Error vs k of finished runs on the same test prompts, plus run metadata columns.

    ``args``/``kwargs`` are :class:`EvalConfig`'s fields (``test_cov, m, n_steps, n_prompts,
    seed``). Columns: those of :func:`ttsbook.evaluate` and, typed, ``run`` (folder name),
    ``n`` (int: the training context; for a run trained on a range LO:HI the largest, HI),
    ``n_lo`` (int: the smallest, equal to ``n`` for a fixed context), ``train_cov``,
    ``cot_steps``, ``pos``, ``test_cov``, ``m``. Labels for plots: :func:`label_runs`.
    Every run is loaded (and checked) before any is scored.
    """
    spec, device = EvalConfig(*args, **kwargs), resolve_device(device)
    for p in paths:
        need, blame = spec.bytes_for(load_config(p).model)
        check_fits(need, device, "scoring these test prompts", blame)
    runs = [(RunDir(p), load_config(p), load_run(p, device)) for p in paths]
    frames = []
    for run, config, model in runs:
        task = make_task(check_cov_spec(spec.test_cov, model.config.n_dims, "test_cov"),
                         model.config.n_dims)
        with thread_policy(model, device, threads):
            df = evaluate({run.name: model}, task, spec.m, spec.n_steps, n_prompts=spec.n_prompts,
                          seed=spec.seed, device=device)
        low = config.n_points[0] if isinstance(config.n_points, list) else config.n_points
        frames.append(df.assign(run=run.name, n=config.max_points, n_lo=low,
                                train_cov=config.train_cov, cot_steps=config.cot_steps,
                                pos=model.config.pos, test_cov=spec.test_cov, m=spec.m))
    return pd.concat(frames, ignore_index=True)


def score_file(run: str | Path, spec: EvalConfig) -> Path:
    """Where a run keeps its scores under ``spec``: named by a hash of ``spec``."""
    key = json.dumps(dataclasses.asdict(spec), sort_keys=True).encode()
    return RunDir(run).scores_file(hashlib.sha1(key).hexdigest()[:8])


def label_runs(frame: pd.DataFrame, by: Sequence[str] = ("n",), prefix: str = "") -> pd.Series:
    """Display labels from typed columns: ``"GPT, n = 10"``, ``"pos = learned, n = 5..15"``.

    ``by`` names the columns shown, in order: ``n`` prints ``n = N`` (``n = LO..N`` when the
    frame's ``n_lo`` differs, a run trained on a range of contexts), ``train_cov`` prints its
    spec as is, any other column ``name = value``.
    """
    def part(row, column):
        if column == "n":
            low = row.get("n_lo", row["n"])
            return f"n = {row['n']}" if low == row["n"] else f"n = {low}..{row['n']}"
        return str(row[column]) if column == "train_cov" else f"{column} = {row[column]}"

    columns = [c for c in frame.columns if c in {*by, "n_lo"}]
    rows = frame[columns].to_dict("records")  # keeps each column's type (ints stay ints)
    return pd.Series([prefix + ", ".join(part(r, c) for c in by) for r in rows], index=frame.index)
