"""Knowing when to stop: rules that see only the prompt ``(x_i, y_i)`` and the iterates.

Every rule works with any predictor ``predict(prompts, n_steps) -> (B, k, d)`` and never
reads ``prompts.w`` (only the scoring does). For a budget of K passes a rule returns one
estimate per prompt; the rules are

- **residual stop**: the first k at which the prompt's residual ``||y − Xŵ_k||²/m`` stops
  falling (``residual_stop``);
- **hold-out**: run the predictor on part of the prompt's examples and pick the k that best
  predicts the held-out labels (``holdout_curve``; the chosen k is used on the full prompt);
- **damped CoT**: relax each pass, ``ŵ ← ŵ + η(f(ŵ) − ŵ)``, with η from a bound on the top
  eigenvalue of ``−VŜ`` (white box, ``top_eigenvalue_bound``) or, for a black box, from the
  contraction its own iterates show (``iterate_contraction``, ``relax``).

``compare_rules`` scores them against every fixed k and the per-prompt oracle k.
"""
from __future__ import annotations

import pandas as pd
import torch

from .checks import DTYPE, BadValue, check_int, check_number, check_steps
from .evaluate import summarize
from .predictors import pseudo_newton_chain
from .tasks import Prompts

RULES = ("residual stop", "hold-out", "damped")


def _check_iterates(iterates: torch.Tensor, prompts: Prompts) -> torch.Tensor:
    B, d = len(prompts), prompts.n_dims
    if iterates.ndim != 3 or iterates.shape[0] != B or iterates.shape[2] != d \
            or iterates.shape[1] < 1:
        raise BadValue("iterates", f"iterates must have shape ({B}, K >= 1, {d}) to match "
                       f"the prompts, got {tuple(iterates.shape)}")
    return iterates.to("cpu", DTYPE)


def _check_theta(theta) -> float:
    return check_number(theta, "theta", 0, strict=True, high=2)


def _check_budgets(n_steps) -> list[int]:
    """The budgets K: ``n_steps`` as a list of integers >= 1 (one K or several)."""
    n_steps = [n_steps] if isinstance(n_steps, int) else list(n_steps)
    n_steps = [check_int(K, "n_steps") for K in n_steps]
    if not n_steps:
        raise BadValue("n_steps", "n_steps must list at least one budget K >= 1, got none")
    return n_steps


def prompt_residuals(prompts: Prompts, iterates: torch.Tensor, *,
                     from_zero: bool = False) -> torch.Tensor:
    """``||y − Xŵ_k||²/m`` for k = 1..K: (B, K), from the prompt alone; with ``from_zero``,
    k = 0..K (B, K + 1), ``r_0 = ||y||²/m`` the residual of the start ``ŵ_0 = 0``."""
    W = _check_iterates(iterates, prompts.validate())
    if from_zero:
        W = torch.cat([torch.zeros_like(W[:, :1]), W], 1)
    return prompts.residuals(W)


def residual_stop(residuals: torch.Tensor, rtol: float = 0.0) -> torch.Tensor:
    """The first k (1-based) with ``r_{k+1} >= (1 − rtol) r_k``, else K: (B,) long.

    For a pseudo-Newton chain with a symmetric positive definite preconditioner the residual
    is a positive sum of exponentials in k (plus a constant with noise), so it is convex in
    k: the first k where it stops falling is its minimum over all k. On residuals that start
    at ``r_0`` (``prompt_residuals(..., from_zero=True)``) the same index is the pass that
    stalled, the number of passes a chain has run when the rule stops it (K + 1: never).
    """
    check_number(rtol, "rtol", 0, high=1)
    r = torch.as_tensor(residuals, dtype=DTYPE)
    if r.ndim != 2 or r.shape[1] < 1:
        raise BadValue("residuals", f"residuals must have shape (B, K), got {tuple(r.shape)}")
    stops = torch.cat([r[:, 1:] >= (1 - rtol) * r[:, :-1],
                       torch.ones(len(r), 1, dtype=torch.bool)], 1)
    return stops.int().argmax(1) + 1                            # first True


def holdout_curve(predictor, prompts: Prompts, n_steps: int, n_folds: int = 10) -> torch.Tensor:
    """Held-out squared error of ŵ_k, k = 1..n_steps, averaged over folds: (B, n_steps).

    The m examples are cut into ``n_folds`` blocks; for each block the predictor runs on the
    other examples and its iterates predict the block's labels.
    """
    check_steps(n_steps)
    prompts = prompts.validate()
    m = prompts.n_points
    check_int(n_folds, "n_folds", low=2)
    if n_folds > m:
        raise BadValue("n_folds", f"n_folds must be <= m = {m} (one example per fold at "
                       f"least), got {n_folds}")
    X, y = prompts.X, prompts.y
    total = torch.zeros(len(prompts), n_steps, dtype=DTYPE)
    for hold in torch.arange(m).tensor_split(n_folds):
        keep = torch.ones(m, dtype=torch.bool)
        keep[hold] = False
        fit = Prompts(X[:, keep], y[:, keep], prompts.w)
        W = predictor.predict(fit, n_steps).to("cpu", DTYPE)
        pred = torch.einsum("bnd,bkd->bkn", X[:, hold].to("cpu", DTYPE), W)
        total += ((y[:, None, hold].to("cpu", DTYPE) - pred) ** 2).sum(-1)
    return total / m


def top_eigenvalue_bound(V: torch.Tensor, prompts: Prompts, n_squarings: int = 3) -> torch.Tensor:
    """Upper bound ``(tr A^p)^(1/p)``, ``p = 2^(n_squarings+1)``, on the top eigenvalue of
    ``A = −VŜ`` (``Γ⁻¹Ŝ`` for the trained V), per prompt: (B,).

    Power iteration on the matrix: ``A² , A⁴, …`` by repeated squaring. When A's eigenvalues
    are real and >= 0 (``V = −P`` with P symmetric positive definite: A is similar to
    ``P^½ŜP^½``) this is never below ``ν_max`` and at most ``d^(1/p)`` times it (1.21 for
    d = 20 at the default p = 16; 1.45 at p = 8), unlike a vector power iteration's Rayleigh
    quotient, which undershoots.
    """
    check_int(n_squarings, "n_squarings", low=1)
    S = prompts.to("cpu").moments()[0]                           # (B, d, d)
    V = torch.as_tensor(V, dtype=DTYPE)
    if tuple(V.shape) != S.shape[1:]:
        raise BadValue("V", f"V must have shape {tuple(S.shape[1:])}, got {tuple(V.shape)}")
    A = -V @ S
    scale = A.diagonal(dim1=1, dim2=2).sum(-1).clamp(min=1e-300)[:, None, None]
    A = A / scale                                                # top eigenvalue <= 1
    for _ in range(n_squarings):
        A = A @ A
    p = 2 ** (n_squarings + 1)
    trace = torch.einsum("bij,bji->b", A, A).clamp(min=0)       # tr A^p = tr (A^{p/2})²
    return trace ** (1 / p) * scale[:, 0, 0]


def prompt_mu_max(V: torch.Tensor, prompts: Prompts) -> torch.Tensor:
    """Per prompt, the exact largest eigenvalue ν_max of ``−V Ŝ_m`` (``Γ⁻¹Ŝ_m`` for the
    trained V): (B,). ``top_eigenvalue_bound`` bounds it from above at a lower cost.

    It is the finite-m counterpart of ``theory.mu_spectrum``: a prompt whose value exceeds 2
    has a direction that CoT expands, however small its population ``μ_max``.
    """
    S = prompts.to("cpu").moments()[0]                         # (B, d, d)
    V = torch.as_tensor(V, dtype=DTYPE)
    # −VŜ = Γ⁻¹Ŝ is similar to a symmetric matrix: its eigenvalues are real.
    return torch.linalg.eigvals(-V @ S).real.max(dim=-1).values


def damping(nu: torch.Tensor, theta: float = 1.0) -> torch.Tensor:
    """``η = min(1, θ/ν)``: with ν >= every eigenvalue, each mode's factor ``1 − ην_j`` lies
    in ``(1 − θ, 1]``, so for ``0 < θ < 2`` no direction can expand."""
    theta = _check_theta(theta)
    nu = torch.as_tensor(nu, dtype=DTYPE)
    return torch.where(nu > theta, theta / nu.clamp(min=1e-300), 1.0)


def damped_iterates(V: torch.Tensor, prompts: Prompts, n_steps: int, eta) -> torch.Tensor:
    """``ŵ ← ŵ + η V(Ŝŵ − b)`` from 0 with a per-prompt η (B,): (B, n_steps, d) float64."""
    S, b = prompts.to("cpu").moments()
    eta = torch.as_tensor(eta, dtype=DTYPE).expand(len(b))[:, None]
    return pseudo_newton_chain(torch.as_tensor(V, dtype=DTYPE), S, b, n_steps, eta=eta)


def _steps(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``δ_j = ŵ_j − ŵ_{j−1}`` (ŵ_0 = 0), (B, K, d), and which of them are usable: finite
    and below 1e100 (so products of two stay finite), (B, K) bool."""
    steps = torch.diff(W, dim=1, prepend=torch.zeros_like(W[:, :1]))
    size = steps.abs().amax(-1)
    return steps, torch.isfinite(size) & (size < 1e100)


def iterate_contraction(iterates: torch.Tensor) -> torch.Tensor:
    """Black-box estimate of the step's top eigenvalue ν from the chain itself: (B,).

    With ``δ_j = ŵ_{j+1} − ŵ_j`` (``ŵ_0 = 0``) an affine chain has ``δ_{j+1} = (I − M)δ_j``:
    the steps are a power iteration of ``I − M``. The Rayleigh quotient of the last two
    usable steps (finite, below 1e100: an overflowing chain uses the last ones before it
    overflowed), ``a = <δ_j, δ_j−1>/|δ_j−1|²``, estimates its dominant eigenvalue,
    ``ν = 1 − a`` (``ν > 1`` for an overshooting, oscillating chain). Needs K >= 2; NaN for
    a prompt without two usable consecutive steps.
    """
    W = torch.as_tensor(iterates, dtype=DTYPE)
    if W.ndim != 3 or W.shape[1] < 2:
        raise BadValue("iterates", f"iterates must have shape (B, K >= 2, d), "
                                   f"got {tuple(W.shape)}")
    steps, ok = _steps(W)
    pair = ok[:, 1:] & ok[:, :-1]                                  # (B, K−1): δ_j−1, δ_j usable
    j = torch.where(pair.any(1), pair.shape[1] - 1 - pair.flip(1).int().argmax(1), 0)
    rows = torch.arange(len(W))
    last, before = steps[rows, j + 1], steps[rows, j]
    scale = before.abs().amax(-1, keepdim=True).clamp(min=1e-300)
    last, before = last / scale, before / scale
    a = (last * before).sum(-1) / (before ** 2).sum(-1).clamp(min=1e-300)
    return torch.where(pair.any(1), 1 - a, torch.nan)


def _binomial(W: torch.Tensor, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The binomial sum of the iterates, and per prompt whether float64 kept it accurate
    (finite, and its rounding bound K·2⁻⁵² Σ_j weight_j |ŵ_j| below 1e-6 of the result)."""
    B, K, _ = W.shape
    j = torch.arange(K + 1, dtype=DTYPE)
    log_c = (torch.lgamma(torch.tensor(K + 1.0, dtype=DTYPE)) - torch.lgamma(j + 1)
             - torch.lgamma(K - j + 1))
    log_stay = torch.log1p(-eta.clamp(max=1 - 1e-16))[:, None]     # log(1 − η), finite
    weight = torch.exp(log_c + (K - j) * log_stay + j * torch.log(eta)[:, None])  # (B, K+1)
    weight[eta == 1] = torch.nn.functional.one_hot(torch.tensor(K), K + 1).to(DTYPE)
    out = torch.einsum("bj,bjd->bd", weight[:, 1:], W)            # ŵ_0 = 0 drops out
    bound = K * 2.0 ** -52 * torch.einsum("bj,bj->b", weight[:, 1:], W.abs().amax(-1))
    ok = torch.isfinite(out).all(-1) & (bound <= 1e-6 * out.abs().amax(-1))
    return out, ok


def _affine_rerun(W: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """Fit the affine step ``f(v) = Av + ŵ_1`` to the usable steps (``A δ_j = δ_{j+1}``, least
    squares over columns scaled to norm 1) and run the damped chain with it: (B, d)."""
    steps, ok = _steps(W[:, : 2 * W.shape[2] + 2])   # later steps hold no more information
    ok = ok.int().cumprod(1).bool()                                # the leading usable run
    use = (ok[:, :-1] & ok[:, 1:]).to(DTYPE)[:, None, :]          # (B, 1, L−1)
    safe = torch.where(ok[..., None], steps, 0.0).transpose(1, 2)  # (B, d, L)
    norm = safe[..., :-1].norm(dim=1, keepdim=True).clamp(min=1e-300)
    before, after = safe[..., :-1] / norm * use, safe[..., 1:] / norm * use
    A = after @ torch.linalg.pinv(before, rtol=1e-13)              # (B, d, d)
    c, v = W[:, 0], torch.zeros_like(W[:, 0])
    step = eta[:, None]
    for _ in range(W.shape[1]):
        v = v + step * (torch.einsum("bij,bj->bi", A, v) + c - v)
    return v


def relax(iterates: torch.Tensor, eta) -> torch.Tensor:
    """The K-th iterate of the damped chain, from the undamped iterates ŵ_1…ŵ_K: (B, d).

    For an affine step ``f`` (closed forms, LSA) the relaxed map ``(1 − η)I + ηf`` has
    k-th power ``Σ_j C(k, j)(1 − η)^(k−j) η^j f^j``: exact. Where that sum would cancel in
    float64 (the undamped chain grows, or overflows) the affine step is instead fitted to
    the chain's first usable steps and the damped chain is re-run with it: always finite.
    Its accuracy is what the float64 iterates still hold: a mode weaker than the top one by
    a factor r per pass is known in ŵ_j only to 2⁻⁵²·r^j. Measured (tests/test_stopping.py,
    d = 12, one rotated skill at 0.02, n = m = 60, the plain chain overflowing, K up to 1024):
    errors within 1e-6 of the exactly damped chain's (absolute, on the scale where ŵ = 0
    scores 1), iterates within 7e-4 relative (median 3e-5). For a nonlinear model it is what
    damping would give if the model's step were affine. ``eta``: (B,) in (0, 1].
    """
    W = torch.as_tensor(iterates, dtype=DTYPE)
    eta = torch.as_tensor(eta, dtype=DTYPE).expand(W.shape[0])
    if not ((eta > 0) & (eta <= 1)).all():
        raise BadValue("eta", f"eta must lie in (0, 1], got min {eta.min().item():.3g}, "
                       f"max {eta.max().item():.3g}")
    out, ok = _binomial(W, eta)
    if not ok.all():
        out[~ok] = _affine_rerun(W[~ok], eta[~ok])
    return out


def _at(errors: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return errors.gather(1, (k - 1)[:, None])[:, 0]


def _first_min(curve: torch.Tensor) -> torch.Tensor:
    return curve.argmin(1) + 1


def rule_errors(predictor, prompts: Prompts, n_steps, *, V=None, n_folds: int = 10,
                theta: float = 1.0) -> dict:
    """Per-prompt errors of every rule at every budget K in ``n_steps`` (one K or a list):
    name -> ((B, len(n_steps)) errors, (B, len(n_steps)) passes used). Also ``"fixed k"``
    (B, K) for k = 1..max(n_steps) and
    ``"oracle"``. ``V``: the step's matrix for the white-box damping (default:
    ``predictor.V`` if it has one; else the black-box ``iterate_contraction`` and ``relax``).
    """
    prompts, theta = prompts.validate(), _check_theta(theta)
    n_steps = _check_budgets(n_steps)
    K = max(n_steps)
    W = _check_iterates(predictor.predict(prompts, K), prompts)
    fixed = prompts.errors(W)
    stop = residual_stop(prompt_residuals(prompts, W))
    held = holdout_curve(predictor, prompts, K, n_folds)
    V = getattr(predictor, "V", None) if V is None else V
    if V is not None:
        eta = damping(top_eigenvalue_bound(V, prompts), theta)
        damped = prompts.errors(damped_iterates(V, prompts, K, eta))
    cols = {name: [] for name in ("oracle", *RULES)}
    for b in n_steps:
        ks = {"residual stop": stop.clamp(max=b), "hold-out": _first_min(held[:, :b]),
              "oracle": _first_min(fixed[:, :b])}
        for name, k in ks.items():
            cols[name].append((_at(fixed, k), k))
        last = damped[:, b - 1] if V is not None else _black_box_damped(W[:, :b], prompts, theta)
        cols["damped"].append((last, torch.full_like(stop, b)))
    out = {"fixed k": (fixed, torch.arange(1, K + 1).expand(len(W), K))}
    out.update({name: tuple(torch.stack(p, 1) for p in zip(*pairs))
                for name, pairs in cols.items()})
    return out


def _black_box_damped(W: torch.Tensor, prompts: Prompts, theta: float) -> torch.Tensor:
    if W.shape[1] < 2:                       # nothing to estimate from: undamped
        return prompts.errors(W)[:, -1]
    return prompts.errors(relax(W, damping(iterate_contraction(W), theta)))


def compare_rules(predictor, prompts: Prompts, n_steps, setting: str = "", *, V=None,
                  n_folds: int = 10, theta: float = 1.0, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Tidy rows ``setting, rule, K_max, mean, ci_low, ci_high, median, mean_k``.

    ``n_steps``: the budgets K (one or a list). Rules: ``"fixed k"`` (one row per
    k = 1..max(n_steps), ``K_max`` = k), ``"oracle"``
    (the per-prompt best k <= K_max: a lower bound no prompt-only rule can beat) and the
    ``RULES``, at each budget. ``ci_low``/``ci_high``: 95% bootstrap CI of the mean;
    ``mean_k``: mean passes used. See :func:`rule_errors` for ``V``, ``n_folds``, ``theta``.
    """
    n_steps = _check_budgets(n_steps)
    errors = rule_errors(predictor, prompts, n_steps, V=V, n_folds=n_folds, theta=theta)
    return rules_frame(errors, n_steps, setting, n_boot=n_boot, seed=seed)


def rules_frame(errors: dict, n_steps, setting: str = "", *, n_boot: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """:func:`compare_rules`'s frame from :func:`rule_errors`' output for the budgets
    ``n_steps`` (computed once, so the same per-prompt errors can also be compared in
    pairs)."""
    n_steps = _check_budgets(n_steps)
    rows = []
    for rule, (err, k) in errors.items():
        frame = summarize(err, rule, n_boot, seed).rename(columns={"predictor": "rule"})
        if rule != "fixed k":
            frame["k"] = n_steps
        rows.append(frame.rename(columns={"k": "K_max"}).assign(
            mean_k=k.double().mean(0).numpy()))
    return pd.concat(rows, ignore_index=True).assign(setting=setting)[
        ["setting", "rule", "K_max", "mean", "ci_low", "ci_high", "median", "mean_k"]]
