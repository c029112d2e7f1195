"""The in-context weight-prediction task: prompts ``(X, y, w)`` with an explicit seed.

Randomness is explicit: a batch is a pure function of ``(seed, step, split)``. Features,
task vectors and label noise come from separate streams, and the ``"eval"`` split never
reuses a ``"train"`` stream. Sampling runs on the CPU in float64 and is then cast and moved,
so the same seed gives the same prompts on every device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .checks import DTYPE, check_int, check_noise_std
from .spectra import check_cov_spec, check_covariance, check_mixture, parse_cov, sqrt_psd

SPLITS = {"train": 0, "eval": 1}
STREAMS = {"features": 0, "tasks": 1, "noise": 2, "components": 3}


@dataclass
class Prompts:
    """A batch of prompts. ``X``: (B, n, d) features, ``y``: (B, n) labels, ``w``: (B, d) tasks."""

    X: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor

    @property
    def n_dims(self) -> int:
        return self.X.shape[-1]

    @property
    def n_points(self) -> int:
        return self.X.shape[-2]

    def __len__(self) -> int:
        return self.X.shape[0]

    def to(self, device=None, dtype=None) -> "Prompts":
        return Prompts(*(t.to(device=device, dtype=dtype) for t in (self.X, self.y, self.w)))

    def __getitem__(self, idx) -> "Prompts":
        return Prompts(self.X[idx], self.y[idx], self.w[idx])

    def validate(self) -> "Prompts":
        """Check shapes agree and every entry is finite; raise ``ValueError`` otherwise."""
        B, n, d = self.X.shape if self.X.ndim == 3 else (None, None, None)
        if B is None:
            raise ValueError(f"prompts.X must have shape (B, n, d), got {tuple(self.X.shape)}")
        if tuple(self.y.shape) != (B, n):
            raise ValueError(f"prompts.y must have shape {(B, n)} to match X, "
                             f"got {tuple(self.y.shape)}")
        if tuple(self.w.shape) != (B, d):
            raise ValueError(f"prompts.w must have shape {(B, d)} to match X, "
                             f"got {tuple(self.w.shape)}")
        for name in ("X", "y", "w"):
            if not torch.isfinite(getattr(self, name)).all():
                raise ValueError(f"prompts.{name} holds NaN or inf entries")
        return self

    def moments(self, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``Ŝ = XᵀX/m`` (B, d, d) and ``b = Xᵀy/m`` (B, d) in float64, on the prompts'
        device: ``Ŝw = b`` when the labels are noiseless.

        ``weights`` (B, C, m), each row summing to 1, gives C weighted versions per prompt,
        ``Ŝ_c = Σ_i a_ci x_i x_iᵀ`` (B, C, d, d) and ``b_c = Σ_i a_ci y_i x_i`` (B, C, d).
        """
        X, y = self.validate().X.to(DTYPE), self.y.to(DTYPE)
        if weights is not None:
            a = weights.to(X)
            return (torch.einsum("bcm,bmi,bmj->bcij", a, X, X),
                    torch.einsum("bcm,bmi,bm->bci", a, X, y))
        m = X.shape[1]
        return X.transpose(1, 2) @ X / m, torch.einsum("bnd,bn->bd", X, y) / m

    def residuals(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``||y − Xŵ||²/m`` for estimates ``w_hat`` (B, ..., d): shape (B, ...), in
        ``w_hat``'s dtype and device. It needs only the prompt, never ``w``."""
        X, y = self.X.to(w_hat), self.y.to(w_hat)
        flat = w_hat.reshape(len(self), -1, self.n_dims)                # (B, R, d)
        r = ((y[:, None, :] - flat @ X.transpose(1, 2)) ** 2).mean(-1)
        return r.reshape(w_hat.shape[:-1])

    def errors(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``||ŵ − w||²/d`` for estimates ``w_hat`` (B, ..., d): shape (B, ...), in
        ``w_hat``'s dtype and device."""
        w = self.w.to(w_hat).reshape(len(self), *[1] * (w_hat.ndim - 2), -1)
        return ((w_hat - w) ** 2).mean(-1)


def generator(seed: int, step: int = 0, stream: str = "features",
              split: str = "train") -> torch.Generator:
    """A CPU ``torch.Generator`` that is a pure function of ``(seed, step, stream, split)``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {sorted(STREAMS)}, got {stream!r}")
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be >= 0, got seed={seed}, step={step}")
    entropy = [int(seed), int(step), STREAMS[stream], SPLITS[split]]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class RegressionTask:
    """Noiseless (or noisy) linear regression with features ``x ~ N(0, cov)``, ``w ~ N(0, I)``.

    Args:
        cov: (d, d) feature covariance (Λ when training, Σ when testing).
        noise_std: standard deviation σ of optional label noise, ``y = <w, x> + σξ`` with
            ξ ~ N(0, 1) (a finite number >= 0, else :class:`~ttsbook.checks.BadValue`). In
            training it moves the LSA's optimum to ``−(Γ + σ²I/n)⁻¹``
            (``ttsbook.theory.noisy_pseudo_newton_v``).
    """

    def __init__(self, cov: torch.Tensor, noise_std: float = 0.0):
        self.cov = check_covariance(cov, "cov")
        self.noise_std = check_noise_std(noise_std)
        self._root = sqrt_psd(self.cov)

    @property
    def n_dims(self) -> int:
        return self.cov.shape[0]

    def sample(self, n_points: int, batch_size: int, seed: int = 0, step: int = 0, *,
               split: str = "train", device=None, dtype=torch.float32) -> Prompts:
        """Draw ``batch_size`` prompts of ``n_points`` examples: a pure function of the seeds."""
        check_int(n_points, "n_points")
        check_int(batch_size, "batch_size")
        X = self._features(n_points, batch_size, generator(seed, step, "features", split))
        return self._label(X, seed, step, split).to(device=device, dtype=dtype)

    def _features(self, n_points: int, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        g = torch.randn(batch_size, n_points, self.n_dims, generator=gen, dtype=DTYPE)
        return g @ self._root  # (B, n, d), rows ~ N(0, cov) since root is symmetric

    def _label(self, X: torch.Tensor, seed: int, step: int, split: str) -> Prompts:
        B, n, d = X.shape
        w = torch.randn(B, d, generator=generator(seed, step, "tasks", split), dtype=DTYPE)
        y = torch.einsum("bnd,bd->bn", X, w)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(B, n,
                                                 generator=generator(seed, step, "noise", split),
                                                 dtype=DTYPE)
        return Prompts(X, y, w)


class MixtureTask(RegressionTask):
    """Each prompt's feature covariance is ``covs[ℓ]`` with probability ``probs[ℓ]``."""

    def __init__(self, covs: Sequence[torch.Tensor], probs: Sequence[float] | None = None,
                 noise_std: float = 0.0):
        covs, probs = check_mixture(covs, probs)
        self.covs, self.probs = covs, probs / probs.sum()
        super().__init__(sum(p * c for p, c in zip(self.probs, covs)), noise_std)
        self._roots = torch.stack([sqrt_psd(c) for c in covs])  # (L, d, d)

    def sample(self, n_points: int, batch_size: int, seed: int = 0, step: int = 0, *,
               split: str = "train", device=None, dtype=torch.float32) -> Prompts:
        check_int(n_points, "n_points")
        check_int(batch_size, "batch_size")
        comp = torch.multinomial(self.probs, batch_size, replacement=True,
                                 generator=generator(seed, step, "components", split))
        g = torch.randn(batch_size, n_points, self.n_dims, dtype=DTYPE,
                        generator=generator(seed, step, "features", split))
        X = g @ self._roots[comp]  # (B, n, d): each prompt uses its own component's root
        return self._label(X, seed, step, split).to(device=device, dtype=dtype)


def make_task(spec: str, n_dims: int) -> RegressionTask:
    """A task from a spec; ``"a+b"`` is the uniform mixture of tasks ``a`` and ``b``."""
    parts = check_cov_spec(spec).split("+")
    if len(parts) == 1:
        return RegressionTask(parse_cov(parts[0], n_dims))
    return MixtureTask([parse_cov(p, n_dims) for p in parts])
