"""The token layout every model reads.

A token has width ``D = 2d + 2`` and rows ``[x (d); y (1); w (d); 1 (1)]``. The LSA reads
tokens as columns (:func:`embed`), the GPT model as rows (:func:`tokens`)::

    example  [x_i; y_i; 0; 0]      query  [0; 0; w_0; 1]      CoT  [0; 0; ŵ_i; 1]

with ``w_0 = 0`` unless given. CoT appends one token ``[0; 0; ŵ; 1]`` per pass.
"""
from __future__ import annotations

import torch

from .tasks import Prompts


def embed(prompts: Prompts, w0: torch.Tensor | None = None) -> torch.Tensor:
    """The token matrix ``Z`` of shape (B, 2d + 2, n + 1): examples, then the query column."""
    X, y = prompts.X, prompts.y
    B, n, d = X.shape
    Z = X.new_zeros(B, 2 * d + 2, n + 1)
    Z[:, :d, :n] = X.transpose(1, 2)
    Z[:, d, :n] = y
    if w0 is not None:
        Z[:, d + 1:2 * d + 1, n] = w0
    Z[:, -1, n] = 1
    return Z


def tokens(prompts: Prompts) -> torch.Tensor:
    """The same tokens as rows: (B, n + 1, 2d + 2), examples ``[x; y; 0; 0]`` then
    ``[0; 0; 0; 1]``."""
    return embed(prompts).transpose(1, 2)


def cot_tokens(w_hat: torch.Tensor) -> torch.Tensor:
    """CoT tokens ``[0; 0; ŵ; 1]`` as rows for a batch of iterates: (B, K, d) -> (B, K, 2d + 2)."""
    B, K, d = w_hat.shape
    return torch.cat([w_hat.new_zeros(B, K, d + 1), w_hat, w_hat.new_ones(B, K, 1)], dim=-1)


def cot_column(w_hat: torch.Tensor) -> torch.Tensor:
    """The column ``(0, 0, ŵ, 1)`` appended for the next CoT pass: (B, d) -> (B, 2d + 2, 1)."""
    return cot_tokens(w_hat[:, None, :]).transpose(1, 2)
