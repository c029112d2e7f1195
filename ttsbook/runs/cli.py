"""Command line: ``python -m ttsbook train ...``, ``evaluate ...`` and ``sweep ...``.

The options are generated from the fields of :class:`~ttsbook.runs.RunConfig` (with its
nested GPTConfig and RunTrainConfig), :class:`~ttsbook.runs.EvalConfig` and
:class:`~ttsbook.runs.LaunchConfig` (how a sweep runs; its grid and results table are
:mod:`ttsbook.runs.sweep`'s), their help and defaults from the fields. A bad input is one line
on stderr naming the option, exit status 2 (Ctrl-C: 130, after saving a checkpoint);
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from ..checks import BadValue
from ..utils import atomic_write, check_threads, resolve_device, writable_dir
from .launch import LAUNCH_OPTIONS, LaunchConfig, launch, slurm_plan, submitit_installed
from .options import add_options, flag_of, gather, to_argv
from .config import RUN_OPTIONS, RunConfig
from .run import RunDir, RunInterrupted, train_run
from .score import EVAL_OPTIONS, EvalConfig, evaluate_runs
from .sweep import expand, pending, read_sweep

DESCRIPTION = {
    "train": "Train the GPT model with self-fed CoT supervised toward w at every step, in a "
             "run directory named by a hash of its config: a finished run is skipped, an "
             "interrupted one resumes with --resume.",
    "evaluate": "Error ||ŵ_k − w||²/d vs k (k = number of passes) of finished runs on fresh test "
                "prompts, written as a tidy CSV (mean, bootstrap CI, median).",
    "sweep": "Train and score a grid of runs (a sweep file and/or --grid options, times --seeds) "
             "on a local process pool, a SLURM cluster (submitit) or in-process; finished runs "
             "are skipped, interrupted ones resume; every score is collected into OUT/NAME.csv "
             "(and .json), the table chapters read.",
}
GROUPS = {(): "run", ("model",): "model (defaults: the --preset's)", ("train",): "training"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line, without the usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _default(config_class, path: tuple):
    """The default of the field at ``path`` (nested configs followed), from the class itself."""
    field = config_class.__dataclass_fields__[path[0]]
    return _default(field.metadata["nested"], path[1:]) if len(path) > 1 else field.default


def shown_defaults(config_class, opts, none: str | None = None) -> dict:
    """The default written in each option's help (``None`` shown as ``none``, or not at all).
    Model options are left out: their defaults are the ``--preset``'s."""
    shown = {}
    for o in opts:
        value = _default(config_class, o.path)
        if o.path[0] != "model" and (value is not None or none):
            shown[o.path] = none if value is None else o.show(value)
    return shown


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


def build_parser() -> Parser:
    parser = Parser(prog="ttsbook", description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,sweep}")
    shown = shown_defaults(RunConfig, RUN_OPTIONS, none="auto") \
        | shown_defaults(EvalConfig, EVAL_OPTIONS)
    train = sub.add_parser("train", help="train the GPT model with CoT (resumable)",
                           description=DESCRIPTION["train"])
    for prefix, title in GROUPS.items():
        add_options(train.add_argument_group(title),
                    [o for o in RUN_OPTIONS if o.path[:-1] == prefix], shown)
    train.add_argument("--out", type=Path, default=Path("runs"),
                       help="root folder of run directories (default: runs)")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its checkpoint")
    ev = sub.add_parser("evaluate", help="score finished runs, write a CSV",
                        description=DESCRIPTION["evaluate"])
    ev.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                    help="finished run directories")
    add_options(ev, EVAL_OPTIONS, shown)
    ev.add_argument("--out", type=Path, required=True, help="CSV file to write")
    sweep = _sweep_parser(sub)
    for command, options in ((train, RUN_OPTIONS), (ev, EVAL_OPTIONS),
                             (sweep, LAUNCH_OPTIONS + EVAL_OPTIONS)):
        command.add_argument("--device", default="auto",
                             help="'auto' (CUDA when present), 'cpu' or 'cuda[:i]' (default: auto)")
        command.add_argument("--threads", type=int,
                             help="CPU threads (default: one for small models on the CPU unless "
                                  "OMP_NUM_THREADS is set, else torch's)")
        command.add_argument("--debug", action="store_true", help="show the traceback of an error")
        command.set_defaults(parser=command, options=options)
    return parser


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}") from None


def _sweep_parser(sub) -> Parser:
    sweep = sub.add_parser("sweep", help="train and score a grid of runs (local GPUs/CPUs, SLURM)",
                           description=DESCRIPTION["sweep"])
    sweep.add_argument("sweep", nargs="?", metavar="SWEEP",
                       help="a sweep file (.toml) or the name of one that ships with ttsbook "
                            "(e3e4_paper: chapter 8 at the paper's size)")
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                       help="an axis of the grid over any run-config field (e.g. n_points=20,30 "
                            "or pos=learned); replaces the sweep file's axis of that field; "
                            "repeat it")
    sweep.add_argument("--seeds", type=_int_list, metavar="S1,S2",
                       help="training seeds: one run per seed at every grid point (default: the "
                            "sweep file's seeds, else 0)")
    sweep.add_argument("--name", help="name of the results table OUT/NAME.csv (default: the sweep "
                                      "file's name, else 'sweep')")
    sweep.add_argument("--out", type=Path, default=Path("runs"), help="root folder of the run "
                       "directories and the results table (default: runs)")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan (runs to train; for "
                       "slurm the submitit parameters and job array) and launch nothing")
    add_options(sweep.add_argument_group("executor"), LAUNCH_OPTIONS,
                shown_defaults(LaunchConfig, LAUNCH_OPTIONS))
    add_options(sweep.add_argument_group("evaluation (default: the sweep file's [eval], else "
                                         "evaluate's defaults)"), EVAL_OPTIONS, {})
    return sweep


def _sweep(args, argv: list[str]) -> int:
    config = LaunchConfig(**gather(args, LAUNCH_OPTIONS))
    if config.executor == "slurm" and not args.dry_run and not submitit_installed():
        raise BadValue("executor", "the 'slurm' executor needs submitit, which is not installed: "
                                   "pip install 'ttsbook[cluster]'; without it: local, debug "
                                   "(--dry-run shows the SLURM plan)")
    name, spec = read_sweep(args.sweep) if args.sweep else ("sweep", None)
    sweep = expand(spec, args.grid, args.seeds, gather(args, EVAL_OPTIONS), args.name or name)
    root, todo = writable_dir(args.out, "out"), pending(sweep, args.out)
    steps = sum(c.train.steps for c in todo)
    resume = sum(RunDir.of(c, root).checkpoint_file.exists() for c in todo)
    print(f"sweep {sweep.name}: {len(sweep.runs)} runs x {len(sweep.evals)} evaluation settings; "
          f"{len(sweep.runs) - len(todo)} done, {len(todo)} to run ({steps:,} training steps"
          + (f"; {resume} resume from a checkpoint)" if resume else ")"))
    if args.dry_run:
        for c in todo:
            print(f"  {c.name()}")
        if config.executor == "slurm" and todo:
            plan = slurm_plan(len(todo), sweep.name, config)
            print(f"submitit.AutoExecutor(folder={str(root / 'submitit')!r}, "
                  f"**{plan['executor']})\n"
                  f"update_parameters(**{plan['parameters']})\n"
                  f"job array: --array={plan['array']}")
        return 0
    try:
        done = launch(sweep, root, config, args.device, args.threads)
    except KeyboardInterrupt:
        again = shlex.join(["python", "-m", "ttsbook", *argv])
        print(f"{args.parser.prog}: interrupted: finished runs are kept, interrupted ones saved "
              f"a checkpoint; resume with: {again}", file=sys.stderr)
        return 130
    for job in done["jobs"][:1]:
        print(f"submitted {len(done['jobs'])} jobs (array {job.job_id.split('_')[0]}); logs in "
              f"{root / 'submitit'}; once they end, run this command again to collect the results")
    if not done["jobs"]:
        print(f"results: {root / sweep.name}.csv")
    for run, error in done["failures"].items():
        print(f"{args.parser.prog}: error: run {run} failed: {error}", file=sys.stderr)
    if failed := len(done["failures"]):
        print(f"{args.parser.prog}: {failed} of {len(todo)} runs failed (listed above); the "
              f"others are done. Retry the failed ones with: "
              f"{shlex.join(['python', '-m', 'ttsbook', *argv])}", file=sys.stderr)
    return 1 if failed else 0


def _train(args, argv: list[str]) -> int:
    config = RunConfig(**gather(args, RUN_OPTIONS))
    if RunDir.of(config, args.out).finished:
        print(f"already done: {RunDir.of(config, args.out)}")
        return 0
    try:
        print(train_run(config, args.out, args.device, resume=args.resume, threads=args.threads))
    except RunInterrupted as stop:
        command = shlex.join(["python", "-m", "ttsbook", *argv]
                             + ([] if args.resume else ["--resume"]))
        print(f"{args.parser.prog}: interrupted: {stop}; resume with: {command}", file=sys.stderr)
        return 130
    return 0


def _evaluate(args, argv: list[str]) -> int:
    if args.out.is_dir():
        raise BadValue("out", f"{args.out} is a folder: give the path of the CSV file to write")
    writable_dir(args.out.parent, "out")
    df = evaluate_runs(args.runs, **gather(args, EVAL_OPTIONS), device=args.device,
                       threads=args.threads)
    atomic_write(args.out, lambda tmp: df.to_csv(tmp, index=False))
    print(args.out)
    return 0


def _one_line(args, err: Exception) -> tuple[int, str]:
    """Exit status and message of an error: a bad input names its option and exits 2."""
    if isinstance(err, BadValue):
        flag = flag_of(err.arg, args.options) or {"run": "RUN_DIR", "sweep": "SWEEP"}.get(
            err.arg, "--" + err.arg.replace("_", "-"))
        return 2, f"argument {flag}: {err}"
    if isinstance(err, OSError) and err.filename:  # a folder made read-only, a full disk
        again = " (train: with --resume)" if args.command == "train" else ""
        return 2, (f"cannot write {err.filename}: {err.strerror}; make its folder writable "
                   f"(and check free space), then run the same command again{again}")
    if isinstance(err, FileExistsError):
        return 2, f"argument --resume: {err}"
    if isinstance(err, FloatingPointError):
        return 2, f"argument --lr: {err}"
    if isinstance(err, MemoryError) or "out of memory" in str(err):
        return 2, ("out of memory: make the run or the evaluation smaller (--batch-size, "
                   "--n-embd, --n-layer, --n-prompts, --n-steps)")
    return 1, f"{type(err).__name__}: {err} (rerun with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ttsbook`` (and the ``ttsbook`` script); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        args.device = resolve_device(args.device)
        if args.threads is not None:
            check_threads(args.threads)
        return {"train": _train, "evaluate": _evaluate, "sweep": _sweep}[args.command](args, argv)
    except KeyboardInterrupt:
        print(f"{args.parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        status, message = _one_line(args, err)
        print(f"{args.parser.prog}: error: {message}", file=sys.stderr)
        return status
