"""The runs wing: GPT training runs on disk, their scores, grids of them, and the command line.

``import ttsbook`` gives it as the namespace ``ttsbook.runs``; the tutorial core (every other
module of the package) never imports it. Modules, lowest first: ``options`` (command-line
options generated from config dataclasses), ``config`` (:class:`RunConfig`, what decides a
run, and whether it fits in memory), ``run`` (:class:`RunDir`, the one place a run folder's
files are named, :func:`train_run`, loading), ``score`` (how finished runs are scored, their
score files and labels), ``sweep`` (grids of runs and the collected results table), ``pool``
(one job; local workers that die with their parent), ``launch`` (local pool, SLURM, in-process
executors) and ``cli`` (``python -m ttsbook train|evaluate|sweep``).
"""
from .config import RunConfig, RunTrainConfig
from .run import RunDir, RunInterrupted, export_half, load_config, load_run, train_run
from .score import SHIPPED_RUNS, EvalConfig, evaluate_runs, label_runs, score_file
from .sweep import collect, expand, read_sweep, swept_scores
from .launch import LaunchConfig, launch
from .cli import main, train_argv
