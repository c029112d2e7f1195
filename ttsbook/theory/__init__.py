"""Every closed form of the paper (float64), as the book states and checks them; closed forms
only (estimators are in ``ttsbook.predictors``, Monte Carlo in ``ttsbook.experiments``,
per-prompt measurements in ``ttsbook.stopping``). It never imports ``ttsbook.tasks``.

``population``: Γ, population and one-step errors, μ spectrum, scaling law, context needed;
``finite``: finite test prompts (Marchenko–Pastur, the divergence threshold);
``tail``: the finite prompt's tail (numpy arrays in, never ``ttsbook.tasks``): the probability
that a prompt diverges (Tracy–Widom edge), the exact per-prompt error at every k given the
prompt's Ŝ, and its means over 10⁵–10⁶ Wishart draws (the one place theory samples: the
tail is not in closed form);
``mixtures``: training mixtures, the task-selection QP and the best mixture for the true error;
``noise``: label noise at test time, as a spectral filter of least squares; ``training_noise``:
label noise in training (the optimum ``−(Γ + σ²I/n)⁻¹``); ``misaligned``: Σ and Λ with
different eigenbases (a non-normal step);
``chain_training``: the LSA trained on its own chain of thought (K-step optimum, stop-gradient
fixed point, the step of a missing direction), given the training moments.
Errors are per coordinate, ``E||ŵ − w||² / d``; arrays over k are indexed k = 0..n_steps.
"""
from .chain_training import (chain_errors, chain_fixed_point, chain_objective, chain_optimum,
                             missing_direction_limit, missing_direction_step)
from .finite import divergence_threshold, finite_prompt_error, mp_density, mp_edges
from .mixtures import (best_mixture, mixture_error, mixture_optimum, optimal_face,
                       selection_mass_range, selection_objective, task_selection)
from .population import (context_needed, gamma, mu_spectrum, n_star, one_step_error,
                         population_error, pseudo_newton_v, scaling_law, wishart_second_moment)
from .noise import filter_error, gd_filter, least_squares_error, ridge_filter, ridge_gamma
from .tail import (PromptSpectra, TailStats, divergence_probability, isotropic_paths,
                   prompt_spectra, sample_moments, spectral_errors, tail_stats)
from .training_noise import (contracting_noise, noisy_direct_loss, noisy_gamma,
                             noisy_pseudo_newton_v)
from .misaligned import Transient, aligned_error, misalignment_bound, tilt, transient
