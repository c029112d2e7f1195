"""ttsbook: test-time scaling with linear self-attention and a GPT-style transformer.

The public API is what the book imports; see each module for the contract.
"""
from .checks import BadValue
from .evaluate import bootstrap_mean_ci, evaluate, prompt_errors, summarize
from .finished import SHIPPED_RUNS, EvalConfig, evaluate_runs, load_config, load_run
from .gpt import GPT, GPTConfig, PRESETS, preset
from .lsa import LSA, LSAConfig
from .predictors import GradientDescent, LeastSquares, PseudoNewton
from .runs import RunConfig, RunInterrupted, run_dir, train_argv, train_run
from .spectra import (check_covariance, hardness, isotropic, missing_skills, parse_cov, power_law,
                      random_rotation, rotate, skill_task, task_kinds)
from .sweeps import compare_mixtures, hardness_sweep, label_runs, train_on_mixture
from .tasks import MixtureTask, Prompts, RegressionTask, make_task
from .theory import (best_mixture, context_needed, divergence_threshold, divergent_fraction,
                     finite_prompt_error, gamma, mixture_error, mixture_optimum, mp_density,
                     mp_edges, mu_spectrum, n_star, one_step_error, optimal_face,
                     population_error, prompt_mu_max, pseudo_newton_v, scaling_law,
                     selection_mass_range, selection_objective, task_selection,
                     wishart_second_moment)
from .tokens import cot_column, cot_tokens, embed, tokens
from .train import TrainConfig, Trainer, cot_loss, direct_loss, train
from .utils import announce, book_scale, load_checkpoint, resolve_device, save_checkpoint, thread_policy
from .cluster import LaunchConfig, expand, launch, read_sweep, swept_scores

__version__ = "0.2.0"
