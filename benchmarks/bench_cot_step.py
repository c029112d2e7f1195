"""What CoT training costs: one ``cot_loss`` training step against a direct step of the same length.

A CoT step (``ttsbook.cot_loss`` with K passes, then backward and ``Adam.step``) runs the
prompt with gradient, generates the K − 1 CoT tokens from its KV cache without gradient (K − 2
one-token passes), and runs those tokens with gradient against the cache. The reference is a
direct training step over the same n + K tokens (the CoT tokens given, no rollout): the
cheapest a step with K supervised read-outs can be. Their ratio is what the rollout adds; the
goal is at most about 1.5x. Steps are interleaved so that load from other processes hits both alike.

    python benchmarks/bench_cot_step.py --threads 1                     # preset cpu, n = 5, 10, 15
    python benchmarks/bench_cot_step.py --preset paper --n-points 20 30 40

Not a test: nothing here runs under ``make test``.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

import ttsbook as tb
from common import add_options, compiled, context, interleaved, medians, save_profile, setup, write  # same folder
from ttsbook.tokens import cot_tokens, tokens
from ttsbook.train import cot_loss


def steps(config: tb.GPTConfig, n_points: int, n_steps: int, batch_size: int, device, autocast,
          compile_mode: str | None = None):
    """Two closures over the same model, batch and optimiser: a CoT step and a direct step.
    With ``compile_mode`` the passes that carry gradient run through ``torch.compile``."""
    model = tb.GPT(config).to(device).train()
    fwd = compiled(model, compile_mode)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    prompts = tb.RegressionTask(tb.isotropic(config.n_dims)).sample(n_points, batch_size, seed=0, device=device)
    w_cot = torch.randn(batch_size, n_steps - 1, config.n_dims, generator=torch.Generator().manual_seed(1))
    tok = torch.cat([tokens(prompts), cot_tokens(w_cot.to(device))], dim=1)  # (B, n + K, D)

    def train(loss_fn):
        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    direct = train(lambda: (fwd(tok)[:, n_points:].float() - prompts.w[:, None]).square().mean())
    cot = train(lambda: cot_loss(model, prompts, n_steps, fwd))
    return {"direct": direct, "cot": cot}


def run(args, device) -> tuple[dict, Callable[[], None]]:
    """The result, and the CoT step of the last n for profiling."""
    config = tb.preset(args.preset)
    rows = []
    for n in args.n_points:
        closures = steps(config, n, args.cot_steps, args.batch, device, args.bf16, args.compile)
        times = interleaved(closures, device, args.warmup, args.steps)
        (direct, direct_cpu), (cot, cot_cpu) = medians(times["direct"]), medians(times["cot"])
        rows.append({"n_points": n, "tokens": n + args.cot_steps, "direct_wall_s": direct, "cot_wall_s": cot,
                     "ratio_wall": cot / direct, "direct_cpu_s": direct_cpu, "cot_cpu_s": cot_cpu,
                     "ratio_cpu": cot_cpu / direct_cpu})
    return context(device, args) | {"preset": args.preset, "config": tb.utils.config_dict(config),
                                    "batch": args.batch, "cot_steps": args.cot_steps, "rows": rows}, closures["cot"]


def report(result: dict) -> None:
    print(f"{result['machine']} | load {result['load_avg_1min']:.1f} | torch {result['torch']} | preset "
          f"{result['preset']} | batch {result['batch']} | K = {result['cot_steps']} | bf16 {result['bf16_autocast']} | "
          f"compile {result['compile']}")
    print(f"{'n':>4s} {'tokens':>6s} {'direct s':>9s} {'CoT s':>9s} {'CoT/direct':>10s} {'(CPU time)':>10s}")
    for r in result["rows"]:
        print(f"{r['n_points']:4d} {r['tokens']:6d} {r['direct_wall_s']:9.4f} {r['cot_wall_s']:9.4f} "
              f"{r['ratio_wall']:9.2f}x {r['ratio_cpu']:9.2f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, steps=30, warmup=5)
    parser.add_argument("--preset", default="cpu", choices=sorted(tb.gpt.PRESETS), help="model size")
    parser.add_argument("--n-points", type=int, nargs="+", default=[5, 10, 15], help="training contexts n")
    parser.add_argument("--cot-steps", type=int, default=8, help="K, supervised passes (>= 2)")
    parser.add_argument("--batch", type=int, default=64, help="prompts per batch")
    args = parser.parse_args(argv)
    if args.cot_steps < 2:
        parser.error(f"--cot-steps must be >= 2 (K = 1 is a direct step), got {args.cot_steps}")
    device = setup(args)
    result, cot = run(args, device)
    report(result)
    path = write(result, f"bench_cot_step-{args.preset}", args)
    if args.profile:
        save_profile(cot, device, f"one CoT training step, n = {args.n_points[-1]}: {path.stem}", path)


if __name__ == "__main__":
    main()
