"""Feature covariances (training Λ, test Σ) and their hardness.

Every constructor returns a symmetric positive semi-definite ``(d, d)`` float64 tensor.
Exact references live in float64; the sampler casts to whatever dtype the model uses.
:func:`parse_cov` names them by a short spec (``"power:1.0"``, ``"missing:3,4:0.1"``), as the
command line and the run configs do.
"""
from __future__ import annotations

from typing import Sequence

import torch

DTYPE = torch.float64


def _check_dim(d: int, name: str = "d") -> None:
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise ValueError(f"{name} must be a positive integer, got {d!r}")


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


def isotropic(d: int) -> torch.Tensor:
    """The identity ``I_d``: every skill equally present (``Hard = d``)."""
    _check_dim(d)
    return torch.eye(d, dtype=DTYPE)


def power_law(d: int, alpha: float = 1.0, *, normalise: bool = True) -> torch.Tensor:
    """Diagonal spectrum ``λ_i ∝ i^(-alpha)``, i = 1..d.

    ``normalise=True`` rescales to ``tr Λ = d`` (same total signal as ``I_d``);
    ``normalise=False`` keeps the raw ``λ_i = i^(-alpha)`` (so ``λ_1 = 1``).
    """
    _check_dim(d)
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    lam = torch.arange(1, d + 1, dtype=DTYPE) ** (-float(alpha))
    if normalise:
        lam = lam * d / lam.sum()
    return torch.diag(lam)


def missing_skills(d: int, directions: Sequence[int], eps: float = 0.0,
                   base: torch.Tensor | None = None) -> torch.Tensor:
    """``base`` (default ``I_d``) with the chosen coordinate directions scaled by ``eps``.

    A skill with ``eps = 0`` never appears in training prompts; small ``eps`` makes it rare.
    """
    base = isotropic(d) if base is None else check_covariance(base, "base")
    if base.shape[0] != d:
        raise ValueError(f"base must be ({d}, {d}), got {tuple(base.shape)}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    idx = list(directions)
    if any((not isinstance(i, int)) or i < 0 or i >= d for i in idx):
        raise ValueError(f"directions must be integers in [0, {d}), got {idx}")
    scale = torch.ones(d, dtype=DTYPE)
    scale[idx] = float(eps) ** 0.5
    return scale[:, None] * base * scale[None, :]


def random_rotation(d: int, seed: int = 0) -> torch.Tensor:
    """A Haar-random orthogonal ``(d, d)`` matrix, a pure function of ``seed``."""
    _check_dim(d)
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DTYPE))
    return q * torch.sign(torch.diagonal(r))[None, :]  # sign fix makes it Haar


def rotate(cov: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``Q Λ Qᵀ`` for a random rotation ``Q``: same spectrum, non-diagonal matrix."""
    cov = check_covariance(cov)
    q = random_rotation(cov.shape[0], seed)
    out = q @ cov @ q.T
    return (out + out.T) / 2  # exact symmetry despite rounding


def hardness(cov: torch.Tensor) -> float:
    """``Hard(Λ) = tr Λ / λ_min(Λ)``: scale-free, ``d`` for ``I_d``, inf if a skill is absent."""
    cov = check_covariance(cov)
    lam_min = torch.linalg.eigvalsh(cov).min().item()
    return float("inf") if lam_min <= 0 else torch.trace(cov).item() / lam_min


def sqrt_psd(cov: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a PSD matrix (works when ``cov`` is singular)."""
    lam, q = torch.linalg.eigh(cov)
    return (q * lam.clamp(min=0).sqrt()) @ q.T


# ---------------------------------------------------------------- specs: covariances by name
COV_SPECS = {
    "isotropic": "I_d",
    "power:A": "λ_i ∝ i^-A rescaled to tr Λ = d",
    "power_raw:A": "raw λ_i = i^-A (λ_1 = 1)",
    "missing:I,J,...[:EPS]": "I_d with coordinates I, J, ... scaled by EPS (default 0)",
}
COV_HELP = ("covariance spec: " + "; ".join(f"'{k}' = {v}" for k, v in COV_SPECS.items())
            + "; join specs with '+' for a uniform mixture of tasks")


def _parse_one(spec: str) -> tuple[str, tuple]:
    kind, _, arg = spec.strip().partition(":")
    try:
        if kind == "isotropic" and not arg:
            return kind, ()
        if kind in ("power", "power_raw") and arg:
            return kind, (float(arg),)
        if kind == "missing" and arg:
            dirs, _, eps = arg.partition(":")
            return kind, (tuple(int(i) for i in dirs.split(",")), float(eps or 0.0))
    except ValueError:
        pass
    raise ValueError(f"bad covariance spec {spec!r}; expected one of {', '.join(COV_SPECS)}")


def check_cov_spec(spec: str) -> str:
    """Return ``spec`` after checking its syntax (see ``COV_SPECS``); ``ValueError`` if bad."""
    for part in spec.split("+"):
        _parse_one(part)
    return spec


def parse_cov(spec: str, n_dims: int) -> torch.Tensor:
    """The (d, d) covariance named by a single spec such as ``"power:1.0"``."""
    kind, args = _parse_one(spec)
    if kind == "isotropic":
        return isotropic(n_dims)
    if kind == "missing":
        return missing_skills(n_dims, list(args[0]), args[1])
    return power_law(n_dims, args[0], normalise=kind == "power")
