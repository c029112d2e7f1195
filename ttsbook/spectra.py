"""Feature covariances (training Λ, test Σ), their hardness, and the task kinds of chapter 7.

Every constructor returns a symmetric positive semi-definite ``(d, d)`` float64 tensor.
Exact references live in float64; the sampler casts to whatever dtype the model uses.
:func:`parse_cov` names them by a short spec (``"power:1.0"``, ``"missing:3,4:0.1"``), as the
command line and the run configs do; each name is one entry of ``SPECTRA``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .checks import DTYPE, BadValue, check_int, check_number


def check_covariance(cov: torch.Tensor, name: str = "cov", *, definite: bool = False,
                     tol: float = 1e-8) -> torch.Tensor:
    """Return ``cov`` as a float64 tensor after checking it is a valid covariance.

    Raises ``ValueError`` naming ``name`` when ``cov`` is not a square matrix, holds NaN/inf,
    is not symmetric, or has an eigenvalue below ``-tol`` (below ``tol`` if ``definite``).
    """
    cov = torch.as_tensor(cov, dtype=DTYPE)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValueError(f"{name} must be a square (d, d) matrix, got shape {tuple(cov.shape)}")
    if not torch.isfinite(cov).all():
        raise ValueError(f"{name} holds NaN or inf entries")
    scale = max(cov.abs().max().item(), 1.0)
    asym = (cov - cov.T).abs().max().item()
    if asym > tol * scale:
        raise ValueError(f"{name} must be symmetric; largest |cov - cov.T| entry is {asym:.3g}")
    lam_min = torch.linalg.eigvalsh(cov).min().item()
    bound = tol * scale if definite else -tol * scale
    if lam_min < bound:
        kind = "positive definite" if definite else "positive semi-definite"
        raise ValueError(f"{name} must be {kind}; its smallest eigenvalue is {lam_min:.3g}")
    return cov


def isotropic(n_dims: int) -> torch.Tensor:
    """The identity ``I_d``: every skill equally present (``Hard = d``)."""
    check_int(n_dims, "n_dims")
    return torch.eye(n_dims, dtype=DTYPE)


def power_law(n_dims: int, alpha: float = 1.0, *, normalise: bool = True) -> torch.Tensor:
    """Diagonal spectrum ``λ_i ∝ i^(-alpha)``, i = 1..d.

    ``normalise=True`` rescales to ``tr Λ = d`` (same total signal as ``I_d``);
    ``normalise=False`` keeps the raw ``λ_i = i^(-alpha)`` (so ``λ_1 = 1``).
    """
    check_int(n_dims, "n_dims")
    check_number(alpha, "alpha", 0)
    lam = torch.arange(1, n_dims + 1, dtype=DTYPE) ** (-float(alpha))
    if normalise:
        lam = lam * n_dims / lam.sum()
    return torch.diag(lam)


def missing_skills(n_dims: int, directions: Sequence[int], eps: float = 0.0,
                   base: torch.Tensor | None = None) -> torch.Tensor:
    """``base`` (default ``I_d``) with the chosen coordinate directions scaled by ``eps``.

    A skill with ``eps = 0`` never appears in training prompts; small ``eps`` makes it rare.
    """
    base = isotropic(n_dims) if base is None else check_covariance(base, "base")
    if base.shape[0] != n_dims:
        raise ValueError(f"base must be ({n_dims}, {n_dims}), got {tuple(base.shape)}")
    check_number(eps, "eps", 0)
    idx = list(directions)
    if any((not isinstance(i, int)) or i < 0 or i >= n_dims for i in idx):
        raise ValueError(f"directions must be integers in [0, {n_dims}), got {idx}")
    scale = torch.ones(n_dims, dtype=DTYPE)
    scale[idx] = float(eps) ** 0.5
    return scale[:, None] * base * scale[None, :]


# Task kinds, our reading of the paper's "easy/hard x few/many" (it gives no spectra): a
# *skill* is a feature direction; a task shows ``n_skills`` of them strongly (eigenvalue 1) and
# the rest with weight ``eps``. "few"/"many" is the number of strong directions, "easy"/"hard"
# the size of ``eps`` (small eps = large Hard). All are rescaled to tr Λ = d: same total signal.
KINDS = ("easy-few", "easy-many", "hard-few", "hard-many")


def skill_task(n_dims: int, n_skills: int, eps: float) -> torch.Tensor:
    """Diagonal ``(d, d)`` covariance: directions ``0..n_skills-1`` at 1, the rest at ``eps``,
    ``tr = d``."""
    if not isinstance(n_skills, int) or not 1 <= n_skills <= n_dims:
        raise ValueError(f"n_skills must be an integer in [1, {n_dims}], got {n_skills!r}")
    if not 0 < eps <= 1:
        raise ValueError(f"eps must lie in (0, 1], got {eps!r}")
    cov = missing_skills(n_dims, list(range(n_skills, n_dims)), eps)
    return cov * n_dims / torch.trace(cov)


def task_kinds(n_dims: int, few: int, many: int, eps_easy: float,
               eps_hard: float) -> dict[str, torch.Tensor]:
    """The four task kinds of ``KINDS`` as a name -> covariance dict."""
    if not few < many:
        raise ValueError(f"few must be < many, got few={few}, many={many}")
    if not eps_hard < eps_easy:
        raise ValueError(f"eps_hard must be < eps_easy, got {eps_hard} and {eps_easy}")
    return {f"{ease}-{size}": skill_task(n_dims, count, eps)
            for ease, eps in (("easy", eps_easy), ("hard", eps_hard))
            for size, count in (("few", few), ("many", many))}


def check_mixture(covs: Sequence[torch.Tensor], probs=None) -> tuple[list, torch.Tensor]:
    """A mixture of covariances, checked: ``covs`` as float64 covariances of one shape and
    ``probs`` (default uniform) as float64 probabilities (>= 0, their sum 1 within 1e-6);
    ``ValueError`` naming the argument otherwise."""
    covs = [check_covariance(c, f"covs[{i}]") for i, c in enumerate(covs)]
    if not covs:
        raise ValueError("covs must hold at least one covariance")
    if any(c.shape != covs[0].shape for c in covs):
        raise ValueError(f"covs must all share one shape, got {[tuple(c.shape) for c in covs]}")
    probs = torch.full((len(covs),), 1 / len(covs), dtype=DTYPE) if probs is None else \
        torch.as_tensor(probs, dtype=DTYPE)
    if probs.shape != (len(covs),) or (probs < 0).any() or abs(probs.sum().item() - 1) > 1e-6:
        raise ValueError(f"probs must be {len(covs)} non-negative numbers summing to 1, "
                         f"got {probs.tolist()}")
    return covs, probs


def random_rotation(n_dims: int, seed: int = 0) -> torch.Tensor:
    """A Haar-random orthogonal ``(d, d)`` matrix, a pure function of ``seed``."""
    check_int(n_dims, "n_dims")
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n_dims, n_dims, generator=g, dtype=DTYPE))
    return q * torch.sign(torch.diagonal(r))[None, :]  # sign fix makes it Haar


def rotate(cov: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``Q Λ Qᵀ`` for a random rotation ``Q``: same spectrum, non-diagonal matrix."""
    cov = check_covariance(cov)
    q = random_rotation(cov.shape[0], seed)
    out = q @ cov @ q.T
    return (out + out.T) / 2  # exact symmetry despite rounding


def hardness(cov: torch.Tensor) -> float:
    """``Hard(Λ) = tr Λ / λ_min(Λ)``: scale-free, ``d`` for ``I_d``, inf if a skill is
    absent."""
    cov = check_covariance(cov)
    lam_min = torch.linalg.eigvalsh(cov).min().item()
    return float("inf") if lam_min <= 0 else torch.trace(cov).item() / lam_min


def sqrt_psd(cov: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a PSD matrix (works when ``cov`` is singular)."""
    lam, q = torch.linalg.eigh(cov)
    return (q * lam.clamp(min=0).sqrt()) @ q.T


# ---------------------------------------------------------------- covariances by name
@dataclass(frozen=True)
class Spectrum:
    """A covariance the command line and run configs name by a spec ``name[:params]``.

    ``parse`` turns the text after the first colon into arguments (raising ``ValueError``);
    ``build(d, *args)`` makes the (d, d) matrix and checks what depends on d.
    """

    name: str
    params: str
    help: str
    parse: Callable[[str], tuple]
    build: Callable[..., torch.Tensor]


def _no_params(text: str) -> tuple:
    if text:
        raise ValueError(text)
    return ()


def _exponent(text: str) -> tuple:
    return (check_number(float(text), "A", 0),)


def _directions(text: str) -> tuple:
    dirs, _, eps = text.partition(":")
    return tuple(int(i) for i in dirs.split(",")), check_number(float(eps or 0.0), "EPS", 0)


SPECTRA = {s.name: s for s in [
    Spectrum("isotropic", "", "I_d", _no_params, isotropic),
    Spectrum("power", "A", "λ_i ∝ i^-A rescaled to tr Λ = d", _exponent, power_law),
    Spectrum("power_raw", "A", "raw λ_i = i^-A (λ_1 = 1)", _exponent,
             lambda d, alpha: power_law(d, alpha, normalise=False)),
    Spectrum("missing", "I,J,...[:EPS]", "I_d with coordinates I, J, ... scaled by EPS (default 0)",
             _directions, lambda d, dirs, eps: missing_skills(d, list(dirs), eps)),
]}
SPEC_FORMS = [s.name + (":" + s.params if s.params else "") for s in SPECTRA.values()]
COV_HELP = ("covariance spec: "
            + "; ".join(f"'{f}' = {s.help}" for f, s in zip(SPEC_FORMS, SPECTRA.values()))
            + "; join specs with '+' for a uniform mixture of tasks")


def _parse_one(spec: str) -> tuple[Spectrum, tuple]:
    name, _, text = spec.strip().partition(":")
    if name not in SPECTRA:
        raise BadValue("cov", f"bad covariance spec {spec!r}: unknown name {name!r}; "
                              f"expected one of {', '.join(SPEC_FORMS)}")
    spectrum = SPECTRA[name]
    try:
        return spectrum, spectrum.parse(text)
    except ValueError as err:  # a BadValue says what is wrong; float("x") and the like do not
        detail = err if isinstance(err, BadValue) else f"expected {name}:{spectrum.params}"
        raise BadValue("cov", f"bad covariance spec {spec!r}: {detail}") from None


def check_cov_spec(spec: str, n_dims: int | None = None, arg: str = "cov") -> str:
    """Return ``spec`` after checking its syntax (see ``SPECTRA``) and, given ``n_dims``, that
    every part builds a valid (d, d) covariance; else a ``BadValue`` naming ``arg``."""
    try:
        for part in spec.split("+"):
            parse_cov(part, n_dims) if n_dims is not None else _parse_one(part)
    except BadValue as err:
        raise BadValue(arg, str(err)) from None
    return spec


def parse_cov(spec: str, n_dims: int) -> torch.Tensor:
    """The (d, d) covariance named by a single spec such as ``"power:1.0"``."""
    spectrum, args = _parse_one(spec)
    try:
        return spectrum.build(n_dims, *args)
    except ValueError as err:
        raise BadValue("cov", f"bad covariance spec {spec!r} for d = {n_dims}: {err}") from None
