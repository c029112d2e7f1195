"""What every training-step benchmark here shares: options, interleaved timing, the result file."""
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

import ttsbook as tb

RESULTS = Path(__file__).resolve().parent / "results"
COMPILE_MODES = ["default", "reduce-overhead", "max-autotune"]


def add_options(parser: argparse.ArgumentParser, steps: int, warmup: int) -> None:
    """The options of every benchmark: device, step counts, bf16, compile, threads, output folder."""
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--steps", type=int, default=steps, help="timed steps of each kind (after warm-up)")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed steps of each kind first")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: on for CUDA, off for CPU)")
    parser.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES,
                        help="torch.compile the models first; a mode may follow (reduce-overhead: "
                             "CUDA graphs, which cut the launch cost of these small kernels)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, profile one more step of ours (torch.profiler) into a .txt")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads``, fill in the ``--bf16`` default; the device to run on."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = tb.resolve_device(args.device)
    if args.bf16 is None:
        args.bf16 = device.type == "cuda"
    return device


def compiled(model: torch.nn.Module, mode: str | None) -> torch.nn.Module:
    """``model`` itself (``mode`` None) or ``torch.compile(model)`` in that mode."""
    return model if mode is None else torch.compile(model, mode=None if mode == "default" else mode)


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


def interleaved(steps: dict, device, warmup: int, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Time each closure ``repeats`` times after ``warmup`` untimed rounds, in turn (A, B, A, B, …)
    so that load from other processes hits all alike: ``{name: [(wall_s, cpu_s), …]}``."""
    times = {name: [] for name in steps}
    for i in range(warmup + repeats):
        for name, step in steps.items():
            t = timed(step, device)
            if i >= warmup:
                times[name].append(t)
    return times


def medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds."""
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]} ({torch.get_num_threads()} threads)"
    except (OSError, IndexError):
        return platform.processor() or platform.machine()


def context(device: torch.device, args: argparse.Namespace) -> dict:
    """The fields every result file starts with: machine, versions, load, the shared options."""
    return {"machine": machine(device), "device": device.type, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0],
            "bf16_autocast": args.bf16, "compile": args.compile, "warmup": args.warmup, "steps": args.steps,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def profile(step, device: torch.device, title: str, rows: int = 30) -> str:
    """Tables of the operators of one ``step``, by self CPU time (and by GPU time on CUDA): where
    a launch-bound step spends its time, and how many kernels it launches."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    events = prof.key_averages()
    tables = [f"{title}\n\nby self CPU time\n" + events.table(sort_by="self_cpu_time_total", row_limit=rows)]
    for key in ("self_device_time_total", "self_cuda_time_total") if device.type == "cuda" else ():
        try:  # the key's name changed across torch versions
            tables.append("by self GPU time\n" + events.table(sort_by=key, row_limit=rows))
            break
        except (AttributeError, KeyError, ValueError):
            continue
    return "\n".join(tables)


def save_profile(step, device: torch.device, title: str, result_path: Path) -> None:
    """:func:`profile` one step into a ``.txt`` beside the result file."""
    path = result_path.with_suffix(".txt")
    path.write_text(profile(step, device, title) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


def write(result: dict, name: str, args: argparse.Namespace, *tags: str) -> Path:
    """``<out>/<name>-<device>[-<n>threads][-bf16][-compile[-mode]][-tags]-<date>.json``."""
    parts = [name, result["device"]]
    parts += [f"{result['threads']}threads"] if result["device"] == "cpu" else []
    parts += ["bf16"] if args.bf16 else []
    parts += [] if args.compile is None else ["compile" + ("" if args.compile == "default" else f"-{args.compile}")]
    path = args.out / f"{'-'.join([*parts, *tags, result['date'][:10]])}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path
