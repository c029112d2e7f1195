"""The finite prompt's tail (float64, numpy): how many prompts diverge, and the exact error
of k passes on every prompt, so that means over 10⁵–10⁶ prompts see the tail.

A pass of the trained LSA (or any ``V = −P``, P symmetric positive definite) on a prompt with
``Ŝ = XᵀX/m``, ``b = Xᵀy/m`` is ``ŵ ← ŵ − P(Ŝŵ − b)`` from ``ŵ_0 = 0``. With
``B = P^½ŜP^½ = U diag(ν) Uᵀ`` and ``a = 1 − ν`` the error given the prompt's features,
averaged over ``w ~ N(0, I)`` and label noise ``ε ~ N(0, σ²)``, is exactly

    ``E||ŵ_k − w||²/d = [Σ_ij a_i^k a_j^k H_ij G_ij + σ²/m Σ_i H_ii φ_k(ν_i)²/ν_i] / d``

with ``H = UᵀPU``, ``G = UᵀP⁻¹U``, ``φ_k(ν) = 1 − (1 − ν)^k`` (``H∘G = I`` when P ∝ I).
A prompt *diverges* when ``ν_max > 2``: its error grows like ``(ν_max − 1)^{2k}``. Every
prompt length m leaves a positive fraction of such prompts, so the **mean** over prompts
diverges as k → ∞ while the median can keep falling. Errors are per coordinate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import BadValue, check_int, check_number
from .tracy_widom import tw1_sf, wishart_edge


def _matrix(A, name: str) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.isfinite(A).all():
        raise BadValue(name, f"{name} must be a finite square (d, d) matrix, "
                             f"got shape {A.shape}")
    return A


def _preconditioner(V) -> np.ndarray:
    """``P = −V`` after checking it is symmetric positive definite."""
    P = -_matrix(V, "V")
    if np.abs(P - P.T).max() > 1e-10 * np.abs(P).max() or np.linalg.eigvalsh(P).min() <= 0:
        raise BadValue("V", "V must be symmetric negative definite (V = −P, P > 0), "
                            "like the trained V = −Γ⁻¹")
    return P


def _sqrt_sym(A: np.ndarray) -> np.ndarray:
    lam, Q = np.linalg.eigh(A)
    return (Q * np.sqrt(np.clip(lam, 0, None))) @ Q.T


def divergence_probability(V, test_cov, m: int) -> float:
    """Probability that a prompt of m examples, ``x ~ N(0, Σ)``, diverges (``ν_max > 2``).

    ``1 − F₁((2 − μ)/σ)`` with ``(μ, σ)`` the Tracy–Widom edge of ``λ_max(P^½ŜP^½)``
    (``wishart_edge`` of the eigenvalues of ``P^½ΣP^½``). Measured against Monte Carlo
    (4·10⁵ prompts; tests/test_tail.py checks the first two): Σ = I, d = 10, m = 30: 0.084
    vs 0.081, 1.6e-3 vs 1.8e-3; d = 20, m = 6d, 7d: within 3% (0.055, 0.0095); Σ = 1/i
    power law, d = 10, m = 30: 1.3× high at 1.2e-2, 1.5× at 4e-5. It is an asymptotic
    law: deep in the tail of a short prompt it under-estimates (d = 20, m = 25, n = 15:
    6.2e-5 vs 1.1e-4; d = 10, m = 30, n = 12: 1e-6 vs 2.5e-6). Use ``tail_stats`` there.
    """
    P = _preconditioner(V)
    cov = _matrix(test_cov, "test_cov")
    check_int(m, "m")
    root = _sqrt_sym(P)
    mu, sigma = wishart_edge(np.linalg.eigvalsh(root @ cov @ root).clip(0), m)
    return float(tw1_sf((2 - mu) / sigma))


def sample_moments(test_cov, m: int, n_prompts: int, seed: int = 0) -> np.ndarray:
    """``Ŝ = XᵀX/m`` for ``n_prompts`` prompts of m examples ``x ~ N(0, Σ)``: (B, d, d).

    ``numpy.random.default_rng(seed)`` (an int or a sequence of ints); Bartlett's
    decomposition when m >= d (d(d+1)/2 draws per prompt), the raw (m, d) Gaussian matrix
    otherwise.
    """
    cov = _matrix(test_cov, "test_cov")
    check_int(m, "m")
    check_int(n_prompts, "n_prompts")
    rng, d = np.random.default_rng(seed), cov.shape[0]
    root = _sqrt_sym(cov)
    if np.abs(cov - cov[0, 0] * np.eye(d)).max() == 0:           # Σ = σI: skip the product
        root = np.sqrt(cov[0, 0])
    if m >= d:
        T, (rows, cols) = np.zeros((n_prompts, d, d)), np.tril_indices(d, -1)
        T[:, rows, cols] = rng.standard_normal((n_prompts, len(rows)))
        T[:, np.arange(d), np.arange(d)] = np.sqrt(rng.chisquare(m - np.arange(d),
                                                                 size=(n_prompts, d)))
        Y = root * T if np.ndim(root) == 0 else root @ T          # W = TTᵀ ~ Wishart(I, m)
    else:
        Z = rng.standard_normal((n_prompts, m, d)).transpose(0, 2, 1)
        Y = root * Z if np.ndim(root) == 0 else root @ Z
    return Y @ Y.transpose(0, 2, 1) / m


@dataclass
class PromptSpectra:
    """Per prompt: ``nu`` (B, d) the eigenvalues of ``P^½ŜP^½`` (ascending), ``signal``
    (B, d, d) the weights ``H∘G`` (``None`` when P ∝ I: the identity), ``noise`` (B, d)
    the weights ``H_ii``."""

    nu: np.ndarray
    signal: np.ndarray | None
    noise: np.ndarray

    @property
    def nu_max(self) -> np.ndarray:
        return self.nu[:, -1]


def prompt_spectra(V, S=None, *, X=None) -> PromptSpectra:
    """One eigen-decomposition per prompt of ``P^½ŜP^½``: ``S`` (B, d, d) or (d, d), or the
    prompts' features ``X`` (B, m, d), then ``Ŝ = XᵀX/m``."""
    P = _preconditioner(V)
    if (S is None) == (X is None):
        raise BadValue("S", "give exactly one of S (the prompts' Ŝ) and X (their features)")
    if X is not None:
        X = np.asarray(X, dtype=float)
        S = X.transpose(0, 2, 1) @ X / X.shape[1]
    S = np.asarray(S, dtype=float).reshape(-1, *P.shape)
    if np.abs(P - P[0, 0] * np.eye(len(P))).max() <= 1e-12 * P[0, 0]:   # P = cI
        nu = P[0, 0] * np.linalg.eigvalsh(S)
        return PromptSpectra(nu, None, np.full(nu.shape, P[0, 0]))
    root = _sqrt_sym(P)
    nu, U = np.linalg.eigh(root @ S @ root)
    H = U.transpose(0, 2, 1) @ P @ U
    G = U.transpose(0, 2, 1) @ np.linalg.inv(P) @ U
    return PromptSpectra(nu, H * G, np.diagonal(H, axis1=1, axis2=2).copy())


def spectral_errors(spectra: PromptSpectra, n_steps: int, noise_std: float = 0.0,
                    m: int | None = None) -> np.ndarray:
    """Exact per-prompt error ``E||ŵ_k − w||²/d`` for k = 0..n_steps: (B, n_steps + 1).

    Averaged over ``w ~ N(0, I)`` and label noise of standard deviation ``noise_std``
    given the prompt's features (``m``: the prompt length, needed when noise_std > 0).
    Values past float64's range are ``inf``.
    """
    check_int(n_steps, "n_steps", low=0)
    check_number(noise_std, "noise_std", 0)
    if noise_std > 0:
        m = check_int(m, "m")
    if len(spectra.nu) > 1024:                          # blocks that stay in the cache
        return np.concatenate([spectral_errors(PromptSpectra(
            *(None if x is None else x[i:i + 1024] for x in
              (spectra.nu, spectra.signal, spectra.noise))), n_steps, noise_std, m)
            for i in range(0, len(spectra.nu), 1024)])
    a, nu = 1 - spectra.nu, spectra.nu
    B, d = a.shape
    if noise_std > 0:
        live = nu > 1e-12 * np.abs(nu).max(-1, keepdims=True)
        noise = np.where(live, spectra.noise / np.where(live, nu, 1.0), 0.0) * noise_std ** 2 / m
    err, power = np.empty((B, n_steps + 1)), np.ones_like(a)          # power = a^k
    fill = np.zeros_like(a)                                 # 1 − a^k, by a stable recurrence
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(n_steps + 1):
            if spectra.signal is None:
                err[:, k] = np.einsum("bi,bi->b", power, power)
            else:
                err[:, k] = np.einsum("bi,bij,bj->b", power, spectra.signal, power)
            if noise_std > 0:
                err[:, k] += np.einsum("bi,bi->b", noise * fill, fill)
                fill = nu + a * fill
            power *= a
    return np.nan_to_num(err / d, nan=np.inf)


def _first_run(mean: np.ndarray, eps: float) -> tuple[int, int] | None:
    """``(k_reach, k_h)``: first k with mean <= eps and the last k of that run."""
    ok = mean <= eps
    if not ok.any():
        return None
    start = int(np.argmax(ok))
    above = np.flatnonzero(~ok[start:])
    return start, start + (int(above[0]) - 1 if above.size else len(ok) - 1 - start)


@dataclass
class TailStats:
    """Errors of k = 0..n_steps passes over ``n_prompts`` prompts (see :func:`tail_stats`).

    ``mean`` (K+1,): the mean over all prompts; ``median``, ``kept`` : the median over, and
    the curves of, the first ``len(kept)`` prompts; ``chunk_sums`` (C, K+1) and
    ``chunk_sizes`` (C,): per-chunk sums, for a bootstrap over chunks; ``n_diverging``:
    prompts with ``ν_max > 2``; ``nu_max_seen``: the largest ``ν_max`` met.
    """

    mean: np.ndarray
    median: np.ndarray
    kept: np.ndarray
    chunk_sums: np.ndarray
    chunk_sizes: np.ndarray
    n_prompts: int
    n_diverging: int
    nu_max_seen: float

    def divergent_fraction(self) -> tuple[float, float, float]:
        """The fraction of diverging prompts and its 95% Wilson interval."""
        n, x, z = self.n_prompts, self.n_diverging, 1.96
        p, centre = x / n, (x + z * z / 2) / (n + z * z)
        half = z * np.sqrt(x * (n - x) / n + z * z / 4) / (n + z * z)
        return p, max(centre - half, 0.0), centre + half

    def _boot(self, n_boot: int, seed: int) -> np.ndarray:
        """Bootstrap means over chunks (resampled with replacement): (n_boot, K+1)."""
        rng, C = np.random.default_rng(seed), len(self.chunk_sizes)
        idx = rng.integers(0, C, size=(n_boot, C))
        with np.errstate(invalid="ignore"):
            return self.chunk_sums[idx].sum(1) / self.chunk_sizes[idx].sum(1)[:, None]

    def mean_ci(self, n_boot: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """95% percentile interval of the mean at every k (bootstrap over chunks)."""
        return tuple(np.percentile(self._boot(n_boot, seed), [2.5, 97.5], axis=0))

    def best_k(self, n_boot: int = 1000, seed: int = 0) -> tuple[int, int, int]:
        """The mean-optimal fixed k and its 95% bootstrap interval ``(k, lo, hi)``."""
        ks = np.argmin(np.nan_to_num(self._boot(n_boot, seed), nan=np.inf), 1)
        lo, hi = np.percentile(ks, [2.5, 97.5])
        return int(np.argmin(self.mean)), int(lo), int(hi)

    def horizon(self, eps: float, n_boot: int = 1000, seed: int = 0):
        """``(k_reach, k_h, lo, hi)``: the first k whose mean is <= eps, the last k up to
        which it stays so (n_steps: at least that far), and a 95% bootstrap interval of k_h
        (−1 in a resample that never reaches eps). ``None`` when the mean never reaches eps.
        """
        check_number(eps, "eps", 0, strict=True)
        run = _first_run(self.mean, eps)
        if run is None:
            return None
        ends = [(_first_run(b, eps) or (-1, -1))[1] for b in self._boot(n_boot, seed)]
        lo, hi = np.percentile(ends, [2.5, 97.5])
        return run[0], run[1], int(lo), int(hi)


def tail_stats(V, test_cov, m: int, n_steps: int, n_prompts: int = 100_000, *,
               noise_std: float = 0.0, seed: int = 0, chunk: int = 10_000,
               n_keep: int = 20_000) -> TailStats:
    """Exact errors of k = 0..n_steps passes on ``n_prompts`` fresh prompts of m examples.

    Chunk j (of ``chunk`` prompts) is ``sample_moments(test_cov, m, ·, seed=[seed, j])``;
    each prompt's curve is :func:`spectral_errors` (exact given its features), so the only
    error is the Monte Carlo one over prompts: see ``mean_ci``, ``best_k``, ``horizon``
    (bootstrap over chunks) and ``n_diverging`` (the tail is seen only through those prompts).
    Speed (one core): ~7 s per 10⁵ prompts at d = 20, m = 25, n_steps = 200, P ∝ I, σ > 0
    (a third each: sampling, eigenvalues, the errors).
    """
    check_int(n_prompts, "n_prompts")
    check_int(chunk, "chunk")
    check_int(n_keep, "n_keep", low=0)
    sums, sizes, kept, n_div, top = [], [], [], 0, 0.0
    for j, start in enumerate(range(0, n_prompts, chunk)):
        size = min(chunk, n_prompts - start)
        spectra = prompt_spectra(V, sample_moments(test_cov, m, size, seed=[seed, j]))
        err = spectral_errors(spectra, n_steps, noise_std, m)
        with np.errstate(invalid="ignore"):
            sums.append(err.sum(0))
        sizes.append(size)
        n_div += int((spectra.nu_max > 2).sum())
        top = max(top, float(spectra.nu_max.max()))
        if start < n_keep:
            kept.append(err[: n_keep - start])
    sums, sizes = np.array(sums), np.array(sizes, dtype=float)
    kept = np.concatenate(kept)
    return TailStats(sums.sum(0) / n_prompts, np.median(kept, 0), kept, sums, sizes,
                     n_prompts, n_div, top)


def isotropic_paths(eta: float, S, noise_std: float, m: int, n_steps: int,
                    seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, the error ``||ŵ_k − w||²/d`` and the residual ``||y − Xŵ_k||²/m − ||ε||²/m``
    of k = 0..n_steps passes with ``P = ηI`` (``eta``), for a fresh ``w ~ N(0, I)`` and noise:
    two (B, n_steps + 1) arrays.

    Exact in distribution given ``S`` (B, d, d): in the eigenbasis ``Ŝ = Σ λ_j u_j u_jᵀ`` the
    chain is diagonal, ``u_jᵀ(ŵ_k − w) = −(1 − ηλ_j)^k β_j + φ_k(λ_j) ξ_j/λ_j`` with
    ``β_j = u_jᵀw ~ N(0, 1)`` and ``ξ_j = u_jᵀXᵀε/m ~ N(0, σ²λ_j/m)``, independent given Ŝ.
    The residual (up to the constant ``||ε||²/m``, which no rule's choice depends on) is
    ``Σ_j λ_j e_j² − 2 e_j ξ_j``. O(d) per prompt and pass, so rules that read the residual
    (``stopping.residual_stop``) can be scored on 10⁵–10⁶ prompts.
    """
    check_number(eta, "eta", 0, strict=True)
    check_number(noise_std, "noise_std", 0)
    check_int(n_steps, "n_steps", low=0)
    lam = np.clip(np.linalg.eigvalsh(np.asarray(S, dtype=float)), 0, None)
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal(lam.shape)
    xi = noise_std * np.sqrt(lam / check_int(m, "m")) * rng.standard_normal(lam.shape)
    live = lam > 1e-12 * lam.max(-1, keepdims=True)
    ratio = np.where(live, xi / np.where(live, lam, 1.0), 0.0)
    a, power = 1 - eta * lam, np.ones_like(lam)
    err, res = (np.empty((len(lam), n_steps + 1)) for _ in range(2))
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(n_steps + 1):
            e = -power * beta + np.where(live, 1 - power, 0.0) * ratio
            err[:, k] = (e * e).mean(-1)
            res[:, k] = (lam * e * e - 2 * e * xi).sum(-1)
            power *= a
    return err, res
