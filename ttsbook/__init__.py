"""ttsbook: test-time scaling with linear self-attention and a GPT-style transformer.

The public API is what the book's chapters and a reader's own scripts need, by concept below.
Everything else stays in its module (``ttsbook.train.Trainer``, ``ttsbook.utils.save_checkpoint``,
``ttsbook.sweeps``, ...): import it from there. GPT runs on disk, their scores and grids of them
are the wing ``ttsbook.runs`` (``ttsbook.runs.train_run``, ``ttsbook.runs.SHIPPED_RUNS``, ...),
which the rest of the package never imports.
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
from .predictors import GradientDescent, LeastSquares, PseudoNewton
# Training and evaluation.
from .train import TrainConfig, cot_loss, direct_loss, train
from .evaluate import evaluate, prompt_errors
# Closed forms (the theory).
from .theory import (best_mixture, context_needed, divergence_threshold, divergent_fraction,
                     finite_prompt_error, gamma, mixture_error, mixture_optimum, mp_density,
                     mp_edges, mu_spectrum, n_star, one_step_error, optimal_face,
                     population_error, prompt_mu_max, pseudo_newton_v, scaling_law,
                     selection_mass_range, selection_objective, task_selection,
                     wishart_second_moment)
# Knowing when to stop, and planning n and k before training.
from .stopping import compare_rules
from .planner import plan
# The book's scales and devices.
from .utils import announce, book_scale, resolve_device
# The runs wing, as a namespace: train, resume, reload and score GPT runs; grids of them.
from . import runs

__version__ = "0.2.0"
