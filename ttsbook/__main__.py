"""Command line: ``python -m ttsbook train ...`` and ``python -m ttsbook evaluate ...``.

The options are generated from the fields of :class:`~ttsbook.runs.RunConfig` (with its
nested GPTConfig and TrainConfig) and :class:`~ttsbook.finished.EvalConfig`, their help from
the fields' help. A bad input is one line on stderr naming the option, exit status 2 (Ctrl-C:
130, after saving a checkpoint); ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .checks import BadValue, check_int
from .finished import EVAL_OPTIONS, EvalConfig, evaluate_runs
from .options import add_options, flag_of, gather
from .runs import RUN_OPTIONS, RUN_TRAIN, RunConfig, RunInterrupted, run_dir, train_run
from .train import TrainConfig
from .utils import resolve_device, writable_dir

DESCRIPTION = {
    "train": "Train the GPT model with self-fed CoT supervised toward w at every step, in a "
             "run directory named by a hash of its config: a finished run is skipped, an "
             "interrupted one resumes with --resume.",
    "evaluate": "Error ||ŵ_k − w||²/d vs k (k = number of passes) of finished runs on fresh test "
                "prompts, written as a tidy CSV (mean, bootstrap CI, median).",
}

GROUPS = {(): "run", ("model",): "model (defaults: the --preset's)", ("train",): "training"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line, without the usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _shown_defaults() -> dict:
    """The default written in each option's help."""
    train = {f: getattr(TrainConfig, f) for f in TrainConfig.__dataclass_fields__} | RUN_TRAIN
    shown = {o.path: "auto" if train[o.path[1]] is None else o.show(train[o.path[1]])
              for o in RUN_OPTIONS if o.path[0] == "train"}
    shown |= {o.path: o.show(getattr(RunConfig, o.path[0])) for o in RUN_OPTIONS if len(o.path) == 1}
    return shown | {o.path: o.show(getattr(EvalConfig, o.path[0])) for o in EVAL_OPTIONS}


def build_parser() -> Parser:
    parser = Parser(prog="ttsbook", description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate}")
    shown = _shown_defaults()
    train = sub.add_parser("train", help="train the GPT model with CoT (resumable)", description=DESCRIPTION["train"])
    for prefix, title in GROUPS.items():
        add_options(train.add_argument_group(title), [o for o in RUN_OPTIONS if o.path[:-1] == prefix], shown)
    train.add_argument("--out", type=Path, default=Path("runs"), help="root folder of run directories (default: runs)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    ev = sub.add_parser("evaluate", help="score finished runs, write a CSV", description=DESCRIPTION["evaluate"])
    ev.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run directories")
    add_options(ev, EVAL_OPTIONS, shown)
    ev.add_argument("--out", type=Path, required=True, help="CSV file to write")
    for command, options in ((train, RUN_OPTIONS), (ev, EVAL_OPTIONS)):
        command.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda[:i]' "
                                                              "(default: auto)")
        command.add_argument("--threads", type=int, help="CPU threads (default: one for small models on the "
                                                         "CPU unless OMP_NUM_THREADS is set, else torch's)")
        command.add_argument("--debug", action="store_true", help="show the traceback of an error")
        command.set_defaults(parser=command, options=options)
    return parser


def _train(args, argv: list[str]) -> int:
    config = RunConfig(**gather(args, RUN_OPTIONS))
    if (run_dir(config, args.out) / "done").exists():
        print(f"already done: {run_dir(config, args.out)}")
        return 0
    try:
        print(train_run(config, args.out, args.device, resume=args.resume, threads=args.threads))
    except RunInterrupted as stop:
        command = shlex.join(["python", "-m", "ttsbook", *argv] + ([] if args.resume else ["--resume"]))
        print(f"{args.parser.prog}: interrupted: {stop}; resume with: {command}", file=sys.stderr)
        return 130
    return 0


def _evaluate(args, argv: list[str]) -> int:
    writable_dir(args.out.parent, "out")
    df = evaluate_runs(args.runs, **gather(args, EVAL_OPTIONS), device=args.device, threads=args.threads)
    df.to_csv(args.out, index=False)
    print(args.out)
    return 0


def _one_line(args, err: Exception) -> tuple[int, str]:
    """Exit status and message of an error: a bad input names its option and exits 2."""
    if isinstance(err, BadValue):
        flag = flag_of(err.arg, args.options) or {"run": "RUN_DIR"}.get(err.arg, "--" + err.arg.replace("_", "-"))
        return 2, f"argument {flag}: {err}"
    if isinstance(err, FileExistsError):
        return 2, f"argument --resume: {err}"
    if isinstance(err, FloatingPointError):
        return 2, f"argument --lr: {err}"
    return 1, f"{type(err).__name__}: {err} (rerun with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ttsbook`` (and the ``ttsbook`` script); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        args.device = resolve_device(args.device)
        if args.threads is not None:
            check_int(args.threads, "threads")
        return (_train if args.command == "train" else _evaluate)(args, argv)
    except KeyboardInterrupt:
        print(f"{args.parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        status, message = _one_line(args, err)
        print(f"{args.parser.prog}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
