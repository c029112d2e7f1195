"""The LSA trained on its own chain (K passes) on a skewed Λ, tested on isotropic prompts.

For each training spectrum, training context n and horizon K, the diagonal V of the two chain
trainings (``ttsbook.theory.chain_training``; the K = 1 row is −Γ⁻¹ for both):

* ``full``: the minimiser of L_K(V) = (1/K) Σ_j E||ŵ_j − w||²/d (gradient through the chain);
* ``stopgrad``: the fixed point of stop-gradient training (the GPT's ``cot_loss`` recipe).

Then, on isotropic test prompts (Σ = I): μ_max (largest eigenvalue of −V), and the error
over k = 1..3K, in the population (m = ∞) and over test prompts of m = 10, 20, 40 examples
(exact in w per prompt, ``theory.chain_errors``; mean and median over prompts). A cell
``k*/r`` gives the k ≤ 3K of the smallest error and r = error(3K) / error(k*): r > 1 means the
error rises with k within 3K. Full curves go to ``--csv``. ``weak/G``, ``strong/G``: the
learned step in the weakest and the strongest training direction over −Γ⁻¹'s (1 for K = 1;
above 1: a longer step than the direct-trained LSA's). ``pop e1/eK/e3K``: population error at
k = 1, K, 3K.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/chain_lsa.py

The book's GPT configuration (d = 5): ``--n-dims 5 --ns 10 20 --specs power_raw:1.0
power_raw:2.0``. power:1.0 is power_raw:1.0 scaled by d / H_d (H_d = Σ 1/i): L_K is invariant
under (Λ, V) → (cΛ, V/c), so its V is the raw one divided by that factor (same draws).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

import ttsbook as tb
from ttsbook import theory
from ttsbook.checks import DTYPE

KS, MS = (1, 2, 4, 8), (10, 20, 40)
SPECS = ("power_raw:1.0", "power:1.0", "missing:4:0.01")


def trained_vs(cov: torch.Tensor, n: int, draws: int, seed: int) -> dict:
    """{(K, training): diagonal V} for training covariance ``cov`` and context n."""
    S = tb.RegressionTask(cov).sample(n, draws, seed=seed, dtype=DTYPE).moments()[0]
    start, out = theory.pseudo_newton_v(cov, n), {}
    for K in KS:
        out[K, "full"] = theory.chain_optimum(S, K, start) if K > 1 else start
        out[K, "stopgrad"] = theory.chain_fixed_point(S, K, start) if K > 1 else start
    return out


def curves(V: torch.Tensor, K: int, test_moments: dict) -> pd.DataFrame:
    """Error over k = 1..3K: population, and mean and median over test prompts per m."""
    eye = tb.isotropic(V.shape[0])
    rows = {"pop": theory.population_error(V, eye, 3 * K)[1:]}
    for m, S in test_moments.items():
        err = theory.chain_errors(V, S, 3 * K)[:, 1:]
        rows[f"m{m} mean"], rows[f"m{m} median"] = err.mean(0), err.median(0).values
    return pd.DataFrame({name: e.numpy() for name, e in rows.items()},
                        index=pd.RangeIndex(1, 3 * K + 1, name="k"))


def cell(errors: pd.Series) -> str:
    """``k*/r``: the best k and error(3K)/error(k*)."""
    best = errors.idxmin()
    return f"{best}/{errors.iloc[-1] / errors.min():.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=10_000, help="training moments per fit")
    parser.add_argument("--prompts", type=int, default=20_000, help="test prompts per m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-dims", type=int, default=10, help="d")
    parser.add_argument("--ns", type=int, nargs="+", default=[10, 20, 40], help="training n")
    parser.add_argument("--specs", nargs="+", default=list(SPECS), help="training spectra")
    parser.add_argument("--csv", type=Path, default=Path("benchmarks/results/chain_lsa.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start, d = time.time(), args.n_dims
    test = {m: tb.RegressionTask(tb.isotropic(d)).sample(m, args.prompts, seed=args.seed + 1,
                                                         split="eval", dtype=DTYPE).moments()[0]
            for m in MS}
    frames, rows = [], []
    for n in args.ns:
        fits = {}
        for spec in args.specs:
            cov = tb.parse_cov(spec, d)
            raw = spec.replace("power:", "power_raw:")
            if raw != spec and raw in fits:          # same draws scaled: V / scale, not refit
                scale = d / tb.parse_cov(raw, d).trace().item()
                fits[spec] = {key: V / scale for key, V in fits[raw].items()}
            else:
                fits[spec] = trained_vs(cov, n, args.draws, args.seed)
            weak, strong = torch.diagonal(cov).argmin(), torch.diagonal(cov).argmax()
            gamma_inv = -torch.diagonal(theory.pseudo_newton_v(cov, n))
            for (K, training), V in fits[spec].items():
                frame = curves(V, K, test)
                mu = torch.linalg.eigvalsh(-V).max().item()
                pop = frame["pop"]
                rows.append({"spec": spec, "n": n, "K": K, "training": training,
                             "mu_max": mu, "weak/G": (-V[weak, weak] / gamma_inv[weak]).item(),
                             "strong/G": (-V[strong, strong] / gamma_inv[strong]).item(),
                             "pop e1": pop.iloc[0], "pop eK": pop.iloc[K - 1],
                             "pop e3K": pop.iloc[-1]}
                            | {c: cell(frame[c]) for c in frame.columns})
                frames.append(frame.reset_index().assign(spec=spec, n=n, K=K,
                                                         training=training, mu_max=mu))
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames, ignore_index=True).to_csv(args.csv, index=False, float_format="%.6g")
    print(f"curves: {args.csv}; {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
