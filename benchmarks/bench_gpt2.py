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
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import ttsbook as tb

RESULTS = Path(__file__).resolve().parent / "results"


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
    tok = torch.cat([tb.gpt.tokens(prompts), cot], dim=1)
    return tok.to(device), prompts.w.to(device)


def make_step(model: nn.Module, tok, w, autocast: torch.dtype | None):
    """A closure running forward, backward and one Adam step."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(tok.device.type, dtype=autocast, enabled=autocast is not None):
            out = model(tok)                                # (B, T, d)
        loss = (out.float() - w[:, None]).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return step


def timed(step, device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one step. CPU time is the fairer measure on a
    loaded machine: it does not count the time this process waited for a core."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]} ({torch.get_num_threads()} threads)"
    except (OSError, IndexError):
        return platform.processor() or platform.machine()


def build(config: tb.GPTConfig, device, compile_: bool) -> dict[str, nn.Module]:
    models = {
        "ttsbook GPT pos=none": tb.GPT(config),
        "ttsbook GPT pos=learned": tb.GPT(tb.preset("paper", pos="learned", max_len=config.max_len)),
        "HF GPT2Model (gelu_new)": HFGPT2(config),
        "HF GPT2Model (gelu)": HFGPT2(config, activation="gelu"),
    }
    models = {k: m.to(device).train() for k, m in models.items()}
    return {k: torch.compile(m) for k, m in models.items()} if compile_ else models


def run(args) -> dict:
    device = tb.resolve_device(args.device)
    config = tb.preset("paper", max_len=args.n_points + 1 + args.n_cot)
    tok, w = batch(config, args.n_points, args.n_cot, args.batch, device)
    autocast = torch.bfloat16 if args.bf16 else None
    models = build(config, device, args.compile)
    steps = {k: make_step(m, tok, w, autocast) for k, m in models.items()}
    times = {k: [] for k in steps}
    for i in range(args.warmup + args.steps):
        for name, step in steps.items():                   # interleaved: shared load hits all alike
            t = timed(step, device)
            if i >= args.warmup:
                times[name].append(t)
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    hf = "HF GPT2Model (gelu_new)"
    rows = [{"model": k, "params": sum(p.numel() for p in m.parameters()),
             "median_wall_s": wall[k], "min_wall_s": min(t[0] for t in times[k]), "median_cpu_s": cpu[k],
             "steps_per_s": 1 / wall[k], "hf_over_this_wall": wall[hf] / wall[k],
             "hf_over_this_cpu": cpu[hf] / cpu[k], "wall_s": [t[0] for t in times[k]],
             "cpu_s": [t[1] for t in times[k]]}
            for k, m in models.items()]
    ours = wall["ttsbook GPT pos=none"]
    return {"machine": machine(device), "device": device.type, "torch": torch.__version__,
            "transformers": __import__("transformers").__version__, "config": tb.utils.config_dict(config),
            "batch": args.batch, "n_points": args.n_points, "n_cot": args.n_cot, "tokens": tok.shape[1],
            "bf16_autocast": args.bf16, "compile": args.compile, "threads": torch.get_num_threads(),
            "load_avg_1min": os.getloadavg()[0], "warmup": args.warmup,
            "steps": args.steps, "rows": rows, "projected_500k_steps_h": 500_000 * ours / 3600,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def report(result: dict) -> None:
    print(f"{result['machine']} | load {result['load_avg_1min']:.1f} | torch {result['torch']} | "
          f"transformers {result['transformers']} | batch {result['batch']} x {result['tokens']} tokens | "
          f"bf16 {result['bf16_autocast']} | compile {result['compile']}")
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
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--batch", type=int, default=64, help="prompts per batch (paper: 64)")
    parser.add_argument("--n-points", type=int, default=40, help="examples per prompt (paper: up to 40)")
    parser.add_argument("--n-cot", type=int, default=10, help="CoT tokens after the query")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: on for CUDA, off for CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model first")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for every model (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.bf16 is None:
        args.bf16 = tb.resolve_device(args.device).type == "cuda"
    result = run(args)
    report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = f"-{result['threads']}threads" if result["device"] == "cpu" else ""
    tag = f"{result['device']}{threads}{'-bf16' if args.bf16 else ''}{'-compile' if args.compile else ''}"
    path = args.out / f"bench_gpt2-{tag}-{result['date'][:10]}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
