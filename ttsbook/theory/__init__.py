"""Every closed form of the paper (float64), as the book states and checks them.

``population``: Γ, population and one-step errors, μ spectrum, scaling law, context needed;
``finite``: finite test prompts (Marchenko–Pastur, divergence, per-prompt μ_max);
``mixtures``: training mixtures, the task-selection QP and the best mixture for the true error;
``chain_training``: the LSA trained on its own chain of thought (K-step optimum, stop-gradient
fixed point, the step of a missing direction).
Errors are per coordinate, ``E||ŵ − w||² / d``; arrays over k are indexed k = 0..n_steps.
"""
from .chain_training import (chain_errors, chain_fixed_point, chain_objective, chain_optimum,
                             missing_direction_limit, missing_direction_step, wishart_draws)
from .finite import (divergence_threshold, divergent_fraction, finite_prompt_error, mp_density,
                     mp_edges, prompt_mu_max)
from .mixtures import (best_mixture, mixture_error, mixture_optimum, optimal_face,
                       selection_mass_range, selection_objective, task_selection)
from .population import (context_needed, gamma, mu_spectrum, n_star, one_step_error,
                         population_error, pseudo_newton_v, scaling_law, wishart_second_moment)
from .noise import (filter_error, gd_filter, least_squares_error, noisy_one_step_error,
                    noisy_prompt_error, ridge, ridge_filter, ridge_gamma)
