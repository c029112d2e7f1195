"""Command line: ``python -m ttsbook train ...`` and ``python -m ttsbook evaluate ...``.

``train`` runs (or resumes, or skips when finished) a CoT training run of the GPT model in a
directory named by a hash of its config; ``evaluate`` scores finished runs on fresh test
prompts and writes a tidy CSV (error vs k with mean, bootstrap CI and median).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gpt import POSITIONS, PRESETS
from .runs import RunConfig, evaluate_runs, train_run
from .spectra import COV_HELP, check_cov_spec
from .train import SCHEDULES


def _cov_spec(text: str) -> str:
    try:
        return check_cov_spec(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _n_points(text: str) -> int | list:
    """``"10"`` -> 10; ``"5:15"`` -> [5, 15] (n drawn uniformly per batch)."""
    try:
        parts = [int(v) for v in text.split(":")]
        if len(parts) == 1 and parts[0] >= 1:
            return parts[0]
        if len(parts) == 2 and 1 <= parts[0] <= parts[1]:
            return parts
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected an integer n >= 1 or a range LO:HI, got {text!r}")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _device(text: str) -> str:
    if text in ("auto", "cpu") or text.startswith("cuda"):
        return text
    raise argparse.ArgumentTypeError(f"expected 'auto', 'cpu' or 'cuda[:i]', got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ttsbook", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate}")
    fmt = argparse.ArgumentDefaultsHelpFormatter
    d = RunConfig()

    tr = sub.add_parser("train", formatter_class=fmt, help="train the GPT model with CoT (resumable)",
                        description="Train the GPT model with self-fed CoT supervised toward w "
                                    "at every step.")
    tr.add_argument("--preset", choices=sorted(PRESETS), default=d.preset, help="model size")
    tr.add_argument("--pos", choices=POSITIONS, default="none", help="position encoding")
    tr.add_argument("--n-points", type=_n_points, default=d.n_points, metavar="N|LO:HI",
                    help="training context n, or a range drawn uniformly per batch")
    tr.add_argument("--train-cov", type=_cov_spec, default=d.train_cov, metavar="SPEC", help=COV_HELP)
    tr.add_argument("--cot-steps", type=_positive(int), default=d.cot_steps, metavar="K",
                    help="supervised passes per prompt (1 = direct prediction)")
    tr.add_argument("--steps", type=_positive(int), default=d.steps, help="Adam steps")
    tr.add_argument("--batch-size", type=_positive(int), default=d.batch_size, help="prompts per step")
    tr.add_argument("--lr", type=_positive(float), default=d.lr, help="peak learning rate")
    tr.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="learning-rate decay")
    tr.add_argument("--warmup", type=int, default=d.warmup, help="linear warmup steps")
    tr.add_argument("--seed", type=int, default=d.seed, help="seed of the init and the batches")
    tr.add_argument("--ckpt-every", type=_positive(int), default=d.ckpt_every,
                    help="checkpoint period (steps)")
    tr.add_argument("--out", type=Path, default=Path("runs"), help="root folder of run directories")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    tr.add_argument("--device", type=_device, default="auto", help="'auto' picks CUDA when present")
    tr.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")

    ev = sub.add_parser("evaluate", formatter_class=fmt, help="score finished runs, write a CSV",
                        description="Error ||ŵ_k − w||²/d vs k (k = number of passes) of finished runs.")
    ev.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run directories")
    ev.add_argument("--test-cov", type=_cov_spec, default="isotropic", metavar="SPEC", help=COV_HELP)
    ev.add_argument("--m", type=_positive(int), default=10, help="examples per test prompt")
    ev.add_argument("--k-max", type=_positive(int), default=20, help="evaluate k = 1..K_MAX")
    ev.add_argument("--n-prompts", type=_positive(int), default=2000, help="test prompts")
    ev.add_argument("--seed", type=int, default=1, help="seed of the test prompts")
    ev.add_argument("--out", type=Path, required=True, help="CSV file to write")
    ev.add_argument("--device", type=_device, default="cpu", help="'auto' picks CUDA when present")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ttsbook`` (and the ``ttsbook`` script); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        try:
            config = RunConfig(preset=args.preset, model={"pos": args.pos}, n_points=args.n_points,
                               train_cov=args.train_cov, cot_steps=args.cot_steps, steps=args.steps,
                               batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                               warmup=args.warmup, seed=args.seed, ckpt_every=args.ckpt_every,
                               compile=args.compile)
        except ValueError as err:
            parser.error(str(err))
        out = train_run(config, args.out, device=args.device, resume=args.resume)
        print(out)
    else:
        for run in args.runs:
            if not (run / "done").exists():
                parser.error(f"{run} is not a finished run directory (no 'done' marker)")
        df = evaluate_runs(args.runs, args.test_cov, args.m, args.k_max, args.n_prompts, args.seed,
                           args.device)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
        print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
