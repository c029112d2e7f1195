"""One training step of ``ttsbook.GPT`` against Hugging Face ``GPT2Model``, side by side.

Both models get the same read-in ``Linear(2d + 2, 256)`` and read-out ``Linear(256, d)`` and
train on the same batch: n examples + query + CoT tokens, loss ``mean ||ŵ − w||²`` at every
position, then ``Adam.step``. The steps are interleaved (A, B, C, A, B, C, …) so that load from
other processes hits every model alike; the table reports the median after a warm-up.

    python benchmarks/bench_gpt2.py                      # CPU, float32
    python benchmarks/bench_gpt2.py --device cuda --compile

Needs ``pip install transformers`` (the ``bench`` extra). Not a test.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

import ttsbook as tb
from ttsbook.tokens import tokens
from common import add_options, compiled, context, interleaved, medians, save_profile, setup, write  # same folder


class HFGPT2(nn.Module):
    """``GPT2Model`` between the same read-in and read-out as ``ttsbook.GPT`` (tokens -> ŵ)."""

    def __init__(self, config: tb.GPTConfig, activation: str = "gelu_new"):
        super().__init__()
        from transformers import GPT2Config, GPT2Model
        hf = GPT2Config(n_embd=config.n_embd, n_layer=config.n_layer, n_head=config.n_head,
                        n_positions=config.max_len, vocab_size=1, bos_token_id=0, eos_token_id=0,
                        use_cache=False, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        activation_function=activation)  # no dropout, no unused vocabulary
        self.read_in = nn.Linear(2 * config.n_dims + 2, config.n_embd)
        self.backbone = GPT2Model(hf)
        self.read_out = nn.Linear(config.n_embd, config.n_dims)

    def forward(self, tok: torch.Tensor) -> torch.Tensor:
        h = self.backbone(inputs_embeds=self.read_in(tok)).last_hidden_state  # (B, T, C)
        return self.read_out(h)


def batch(config: tb.GPTConfig, n_points: int, n_cot: int, batch_size: int, device) -> tuple:
    """Tokens (B, n + 1 + n_cot, 2d + 2) with CoT rows ``[0; 0; ŵ; 1]`` and the targets w (B, d)."""
    d = config.n_dims
    prompts = tb.RegressionTask(tb.isotropic(d)).sample(n_points, batch_size, seed=0)
    w_hats = torch.randn(batch_size, n_cot, d, generator=torch.Generator().manual_seed(1))
    cot = torch.cat([torch.zeros(batch_size, n_cot, d + 1), w_hats, torch.ones(batch_size, n_cot, 1)], -1)
    tok = torch.cat([tokens(prompts), cot], dim=1)
    return tok.to(device), prompts.w.to(device)


def make_step(model: nn.Module, tok, w, autocast: torch.dtype | None, fused: bool = False):
    """A closure running forward, backward and one Adam step (``fused``: one-kernel Adam)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=fused or None)

    def step():
        with torch.autocast(tok.device.type, dtype=autocast, enabled=autocast is not None):
            out = model(tok)                                # (B, T, d)
        loss = (out.float() - w[:, None]).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return step


def build(config: tb.GPTConfig, device, compile_mode: str | None) -> dict[str, nn.Module]:
    models = {
        "ttsbook GPT pos=none": tb.GPT(config),
        "ttsbook GPT pos=learned": tb.GPT(tb.preset("paper", pos="learned", max_len=config.max_len)),
        "HF GPT2Model (gelu_new)": HFGPT2(config),
        "HF GPT2Model (gelu)": HFGPT2(config, activation="gelu"),
    }
    return {k: compiled(m.to(device).train(), compile_mode) for k, m in models.items()}


def run(args, device) -> tuple[dict, Callable[[], None]]:
    """The result, and the training step of ours (``ttsbook GPT pos=none``) for profiling."""
    config = tb.preset("paper", max_len=args.n_points + 1 + args.n_cot)
    tok, w = batch(config, args.n_points, args.n_cot, args.batch, device)
    autocast = torch.bfloat16 if args.bf16 else None
    models = build(config, device, args.compile)
    steps = {k: make_step(m, tok, w, autocast, args.fused_adam) for k, m in models.items()}
    times = interleaved(steps, device, args.warmup, args.steps)
    wall, cpu = {}, {}
    for k, v in times.items():
        wall[k], cpu[k] = medians(v)
    hf = "HF GPT2Model (gelu_new)"
    rows = [{"model": k, "params": sum(p.numel() for p in m.parameters()),
             "median_wall_s": wall[k], "min_wall_s": min(t[0] for t in times[k]), "median_cpu_s": cpu[k],
             "steps_per_s": 1 / wall[k], "hf_over_this_wall": wall[hf] / wall[k],
             "hf_over_this_cpu": cpu[hf] / cpu[k], "wall_s": [t[0] for t in times[k]],
             "cpu_s": [t[1] for t in times[k]]}
            for k, m in models.items()]
    return context(device, args) | {
        "transformers": __import__("transformers").__version__, "config": tb.utils.config_dict(config),
        "batch": args.batch, "n_points": args.n_points, "n_cot": args.n_cot, "tokens": tok.shape[1],
        "fused_adam": args.fused_adam, "rows": rows,
        "projected_500k_steps_h": 500_000 * wall["ttsbook GPT pos=none"] / 3600}, steps["ttsbook GPT pos=none"]


def report(result: dict) -> None:
    print(f"{result['machine']} | load {result['load_avg_1min']:.1f} | torch {result['torch']} | "
          f"transformers {result['transformers']} | batch {result['batch']} x {result['tokens']} tokens | "
          f"bf16 {result['bf16_autocast']} | compile {result['compile']} | fused Adam {result['fused_adam']}")
    print(f"{'model':26s} {'params':>10s} {'wall s':>7s} {'min s':>7s} {'cpu s':>7s} {'steps/s':>7s} "
          f"{'HF/this wall':>12s} {'HF/this cpu':>11s}")
    for r in result["rows"]:
        print(f"{r['model']:26s} {r['params']:>10,d} {r['median_wall_s']:7.3f} {r['min_wall_s']:7.3f} "
              f"{r['median_cpu_s']:7.3f} {r['steps_per_s']:7.2f} {r['hf_over_this_wall']:11.2f}x "
              f"{r['hf_over_this_cpu']:10.2f}x")
    print("wall/min/cpu s: median wall-clock, fastest wall-clock and median CPU seconds per step")
    print(f"projected 500k-step paper run (ttsbook GPT pos=none): {result['projected_500k_steps_h']:.1f} h")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, steps=10, warmup=3)
    parser.add_argument("--batch", type=int, default=64, help="prompts per batch (paper: 64)")
    parser.add_argument("--n-points", type=int, default=40, help="examples per prompt (paper: up to 40)")
    parser.add_argument("--n-cot", type=int, default=10, help="CoT tokens after the query")
    parser.add_argument("--fused-adam", action="store_true", help="Adam(fused=True): one kernel per step")
    args = parser.parse_args(argv)
    device = setup(args)
    result, ours = run(args, device)
    report(result)
    path = write(result, "bench_gpt2", args, *(["fusedadam"] if args.fused_adam else []))
    if args.profile:
        save_profile(ours, device, f"one training step of ttsbook GPT pos=none: {path.stem}", path)


if __name__ == "__main__":
    main()
