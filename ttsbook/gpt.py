"""A GPT-2-style decoder that reads LSA-shaped tokens and predicts ŵ at every position.

Tokens are rows of width ``D = 2d + 2``, the LSA columns transposed::

    example  [x_i; y_i; 0; 0]      query  [0; 0; 0; 1]      CoT  [0; 0; ŵ_i; 1]

A linear read-in maps each token to the model width C, pre-LayerNorm blocks (causal
self-attention, then a 4x GELU MLP) mix them, and a linear read-out gives ŵ (d numbers) at
every position. CoT appends ``[0; 0; ŵ; 1]`` and reads ŵ again at the new last position; a
KV cache keeps the prefix from being recomputed. Architecture after nanoGPT's ``model.py``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .checks import (MAX_SEED, BadValue, check_choice, check_int, check_number, check_steps,
                     param)
from .tasks import Prompts
from .tokens import cot_column, tokens

POSITIONS = ("none", "learned")


@dataclass
class GPTConfig:
    """Size and shape of the GPT model; every field is also a command-line option."""

    n_dims: int = param(20, "task dimension d (tokens have width 2d + 2)")
    n_layer: int = param(12, "transformer blocks")
    n_head: int = param(8, "attention heads (must divide n_embd)")
    n_embd: int = param(256, "model width C")
    max_len: int = param(128, "most tokens in a sequence (examples + query + CoT); "
                              "the size of the table of learned positions")
    pos: str = param("none", "position encoding: 'none' (tokens already say what they are, so any "
                             "prompt length works) or 'learned' (absolute positions, as in the "
                             "paper's GPT-2)",
                     choices=POSITIONS)
    dropout: float = param(0.0, "dropout probability")
    seed: int = param(0, "seed of the weight initialisation", flag="--init-seed")

    def __post_init__(self):
        for name in ("n_dims", "n_layer", "n_head", "n_embd", "max_len"):
            check_int(getattr(self, name), name)
        if self.n_embd % self.n_head:
            raise BadValue("n_head", f"n_head must divide n_embd, got n_embd={self.n_embd}, "
                                     f"n_head={self.n_head}")
        check_choice(self.pos, "pos", POSITIONS)
        check_number(self.dropout, "dropout", 0, high=1)
        check_int(self.seed, "seed", low=0, high=MAX_SEED)


PRESETS = {
    # ≈9.5M parameters
    "paper": GPTConfig(n_dims=20, n_layer=12, n_head=8, n_embd=256, max_len=128),
    # ≈0.2M parameters
    "cpu": GPTConfig(n_dims=5, n_layer=4, n_head=4, n_embd=64, max_len=64),
}


def preset(name: str, **overrides) -> GPTConfig:
    """A copy of ``PRESETS[name]`` with ``overrides`` applied (and validated)."""
    check_choice(name, "preset", sorted(PRESETS))
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    if unknown := sorted(set(overrides) - fields):
        raise BadValue(unknown[0], f"unknown GPTConfig field(s) {unknown}; "
                                   f"fields are {sorted(fields)}")
    return dataclasses.replace(PRESETS[name], **overrides)


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far: ``layers[i] = (k, v)``, each (B, H, T, C/H).

    ``GPT.forward(tok, KVCache())`` runs the prompt and returns ``(out, cache)``; passing that
    cache back with new tokens runs only those. Caches are never changed in place.
    """

    layers: list = field(default_factory=list)

    @property
    def length(self) -> int:
        """Number of tokens already cached (T)."""
        return self.layers[0][0].shape[2] if self.layers else 0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)  # one fused matmul for q, k, v
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor, past: tuple | None = None):
        """x: (B, T, C) new tokens; ``past``: cached (k, v) of earlier tokens. Returns
        (y, (k, v))."""
        B, T, C = x.shape
        # (B, T, H, hs)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, hs)
        if past is not None:
            # (B, H, L, hs)
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        L = k.shape[2]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=decode_mask(T, L, x.device),
                                           is_causal=T == L,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C)), (k, v)


def decode_mask(T: int, L: int, device) -> torch.Tensor | None:
    """Mask for T new queries after L - T cached keys: query i sees keys 0 … L - T + i.

    SDPA's ``is_causal`` aligns its triangle top-left, which is only right when T == L; one new
    query may see every key, so it needs no mask either.
    """
    if T == L or T == 1:
        return None
    return torch.ones(T, L, dtype=torch.bool, device=device).tril(diagonal=L - T)


class Block(nn.Module):
    """Pre-LayerNorm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))`` with a 4x GELU MLP."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.ln_1, self.attn, self.ln_2 = (nn.LayerNorm(C), CausalSelfAttention(config),
                                           nn.LayerNorm(C))
        self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, past: tuple | None = None):
        a, kv = self.attn(self.ln_1(x), past)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln_2(x))), kv


class GPT(nn.Module):
    """Decoder-only transformer: tokens (B, T, 2d + 2) -> ŵ at every position (B, T, d)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        d, C = config.n_dims, config.n_embd
        with torch.device("meta"):  # build without drawing from the global RNG; init below
            self.read_in = nn.Linear(2 * d + 2, C)
            self.pos_emb = (nn.Parameter(torch.empty(config.max_len, C))
                            if config.pos == "learned" else None)
            self.drop = nn.Dropout(config.dropout)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
            self.ln_f = nn.LayerNorm(C)
            self.read_out = nn.Linear(C, d)
        self.to_empty(device="cpu")
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 init from ``config.seed``: N(0, 0.02) weights, zero biases, unit LayerNorms; the
        projections into the residual stream get std 0.02/√(2·n_layer) (two per block add up)."""
        g = torch.Generator().manual_seed(self.config.seed)
        residual_std = 0.02 / (2 * self.config.n_layer) ** 0.5
        for name, module in self.named_modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, nn.Linear):
                std = residual_std if name.endswith(("attn.proj", "mlp.2")) else 0.02
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * std)
                module.bias.zero_()
        if self.pos_emb is not None:
            self.pos_emb.copy_(torch.randn(self.pos_emb.shape, generator=g) * 0.02)

    def num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, tok: torch.Tensor, cache: KVCache | None = None):
        """ŵ read at every position: tok (B, T, 2d + 2) -> (B, T, d). Causal.

        With a ``cache`` (start with ``KVCache()``) only the new tokens are run and
        ``(out, new_cache)`` is returned; their outputs equal those of a full recompute.
        """
        B, T, D = tok.shape
        if D != 2 * self.config.n_dims + 2:
            raise ValueError(f"tokens must have width 2d + 2 = {2 * self.config.n_dims + 2}, "
                             f"got {D}")
        start = cache.length if cache is not None else 0
        x = self.read_in(tok)                                             # (B, T, C)
        if self.pos_emb is not None:
            if start + T > self.config.max_len:
                raise ValueError(f"sequence of {start + T} tokens exceeds "
                                 f"max_len = {self.config.max_len}")
            x = x + self.pos_emb[start:start + T]
        x = self.drop(x)
        past = cache.layers if cache is not None and cache.layers else [None] * len(self.blocks)
        new = []
        for block, kv in zip(self.blocks, past):
            x, kv = block(x, kv)
            new.append(kv)
        out = self.read_out(self.ln_f(x))                                 # (B, T, d)
        return out if cache is None else (out, KVCache(new))

    def predict(self, prompts: Prompts, n_steps: int) -> torch.Tensor:
        """CoT iterates ``ŵ_1 … ŵ_k`` for k = ``n_steps`` forward passes: (B, n_steps, d).

        ŵ_1 is read at the query token; each next pass appends ``[0; 0; ŵ; 1]`` and reads the
        new last position. Differentiable (gradients flow through the fed-back ŵ too).
        """
        check_steps(n_steps)
        p = next(self.parameters())
        prompts = prompts.validate().to(p.device, p.dtype)
        d = self.config.n_dims
        if prompts.n_dims != d:
            raise ValueError(f"prompts have d = {prompts.n_dims}, but this model has n_dims = {d}")
        total = prompts.n_points + max(n_steps, 1)
        if self.pos_emb is not None and total > self.config.max_len:
            raise ValueError(f"{prompts.n_points} examples + {n_steps} steps need "
                             f"{total} positions, but max_len = {self.config.max_len}")
        if n_steps == 0:
            return prompts.X.new_zeros(len(prompts), 0, d)
        out, cache = self(tokens(prompts), KVCache())
        return torch.cat([out[:, -1:], self.extend(out[:, -1], cache, n_steps - 1)], dim=1)

    def extend(self, w_hat: torch.Tensor, cache: KVCache, n_steps: int) -> torch.Tensor:
        """Continue a chain of thought: the next ``n_steps`` iterates (B, n_steps, d) after the
        iterate ``w_hat`` (B, d) that was read out last, given the ``cache`` of every token so
        far."""
        iterates = []
        for _ in range(n_steps):
            out, cache = self(cot_column(w_hat).transpose(1, 2), cache)  # (B, 1, D): one new token
            w_hat = out[:, -1]
            iterates.append(w_hat)
        return (torch.stack(iterates, dim=1) if iterates
                else w_hat.new_zeros(len(w_hat), 0, w_hat.shape[-1]))
