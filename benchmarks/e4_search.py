"""Chapter 8's E4 search (issue 23): where does the error of a trained GPT rise with k?

Reads the scores of the `e4_search` sweep (``ttsbook/data/sweeps/e4_search.toml``, collected
by ``python -m ttsbook sweep`` into ``RUNS/e4_search.csv``) and writes two small tables:

* ``rise.csv``: per run (training spectrum, n, horizon K, seed) and test m, for the mean and
  the median over test prompts, within k ≤ 3K and over every scored k (1..24): the best k and
  the error there, the error at the last k, their ratio, and whether the rise is beyond the
  bootstrap CIs (:func:`rise_rows`);
* ``contraction.csv`` (with ``--runs``): the GPT's contraction read off its own iterates
  (``ttsbook.stopping.iterate_contraction``: ν, the dominant eigenvalue of the chain's
  per-pass step, from the last two steps of a chain of 3K passes; ν > 2: an expanding,
  oscillating chain), median and 90% quantile over test prompts and the share with ν > 2.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/e4_search.py \\
        --table runs/e4_search.csv --runs runs --out ttsbook/data/gpt/e4_search
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

import ttsbook as tb
from ttsbook import stopping
from ttsbook.runs import load_run
from ttsbook.checks import DTYPE

KEYS = ["train_cov", "n", "cot_steps", "seed", "m"]


def rise_rows(curve: pd.DataFrame) -> list[dict]:
    """The rows of one run at one m: for the mean and the median, over k ≤ 3K (``window``
    ``3K``) and over every scored k (``all``), the best k, the error there and at the window's
    last k (``k_end``), their ratio ``rise`` and whether the rise is real (``rises``: for the
    mean the 95% CIs are apart, for the median, which has no CI here, ``rise`` > 1.1)."""
    K = int(curve["cot_steps"].iloc[0])
    curve = curve.set_index("k").sort_index()
    rows = []
    for window, part in (("3K", curve.loc[:3 * K]), ("all", curve)):
        for stat in ("mean", "median"):
            best, k_end = int(part[stat].idxmin()), int(part.index[-1])
            row = {"stat": stat, "window": window, "k_best": best, "k_end": k_end,
                   "best": part.loc[best, stat], "end": part.loc[k_end, stat]}
            row["rise"] = row["end"] / row["best"]
            if stat == "mean":
                row |= {"best_lo": part.loc[best, "ci_low"], "best_hi": part.loc[best, "ci_high"],
                        "end_lo": part.loc[k_end, "ci_low"], "end_hi": part.loc[k_end, "ci_high"]}
                row["rises"] = bool(row["end_lo"] > row["best_hi"])
            else:
                row["rises"] = bool(row["rise"] > 1.1)
            rows.append(row)
    return rows


def rise_table(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`rise_rows` for every run and m of a collected sweep table."""
    rows = [{**dict(zip(KEYS, key)), **row}
            for key, curve in scores.groupby(KEYS, sort=True) for row in rise_rows(curve)]
    return pd.DataFrame(rows)


def contraction_table(runs: Path, scores: pd.DataFrame, n_prompts: int, seed: int) -> pd.DataFrame:
    """ν of every scored run's chain (3K passes) on isotropic test prompts, per m."""
    rows = []
    for (run, spec, n, K, train_seed), _ in scores.groupby(["run", *KEYS[:-1]]):
        model = load_run(runs / run, device="cpu")
        task = tb.RegressionTask(tb.isotropic(model.config.n_dims))
        for m in sorted(scores["m"].unique()):
            prompts = task.sample(int(m), n_prompts, seed=seed, split="eval")
            with torch.no_grad():
                nu = stopping.iterate_contraction(model.predict(prompts, 3 * int(K)).to(DTYPE))
            nu = nu[nu.isfinite()]
            rows.append({"train_cov": spec, "n": n, "cot_steps": K, "seed": train_seed, "m": m,
                         "nu_median": nu.median().item(), "nu_q90": nu.quantile(0.9).item(),
                         "share_above_2": (nu > 2).double().mean().item()})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, required=True, help="the sweep's collected CSV")
    parser.add_argument("--runs", type=Path, help="the run folders (for the contraction)")
    parser.add_argument("--prompts", type=int, default=3000, help="test prompts per m (ν)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the test prompts (ν)")
    parser.add_argument("--out", type=Path, default=Path("ttsbook/data/gpt/e4_search"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    scores = pd.read_csv(args.table)
    args.out.mkdir(parents=True, exist_ok=True)
    rise = rise_table(scores)
    rise.to_csv(args.out / "rise.csv", index=False, float_format="%.6g")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(rise.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if args.runs:
        nu = contraction_table(args.runs, scores, args.prompts, args.seed)
        nu.to_csv(args.out / "contraction.csv", index=False, float_format="%.6g")
        print(nu.to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
