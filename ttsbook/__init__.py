"""ttsbook: test-time scaling with linear self-attention and a GPT-style transformer.

One address per name. The core is flat: ``ttsbook.X`` for the tasks, models, predictors,
training and evaluation that every chapter uses. The wings are namespaces, imported here so
that ``import ttsbook`` reaches them: ``ttsbook.theory`` (closed forms), ``ttsbook.experiments``
(the LSA experiments of chapters 5–7 and 10), ``ttsbook.stopping``, ``ttsbook.parallel``,
``ttsbook.planner`` and ``ttsbook.runs`` (GPT runs on disk: ``ttsbook.runs.train_run``,
``ttsbook.runs.SHIPPED_RUNS``, ...), which no other module imports. No name is exported at
two addresses (``tests/test_package.py``). Everything else stays in its module
(``ttsbook.train.Trainer``, ``ttsbook.utils.save_checkpoint``).
"""
from .checks import BadValue
# Tasks: prompts of (x, y) pairs, and the covariances that shape them.
from .spectra import (hardness, isotropic, missing_skills, parse_cov, power_law, rotate,
                      skill_task, task_kinds)
from .tasks import MixtureTask, Prompts, RegressionTask
# Models, their tokens, and the reference predictors they are compared with.
from .tokens import cot_column, embed
from .lsa import LSA, LSAConfig
from .gpt import GPT, GPTConfig, preset
from .predictors import GradientDescent, LeastSquares, PseudoNewton, Ridge
# Training and evaluation.
from .train import TrainConfig, cot_loss, direct_loss, train
from .evaluate import evaluate, prompt_errors
# The book's scales and devices.
from .utils import announce, book_scale, resolve_device
from .params import check_params
# The wings, as namespaces; ``runs`` (GPT runs on disk, their scores, grids of them, the
# command line) is the one no other module imports.
from . import experiments, parallel, planner, runs, stopping, theory

__version__ = "0.2.0"
