"""Execute chapters top to bottom (nbclient), each alone in an empty folder, at one scale.

    python book/_scripts/execute.py --inplace                  # refresh the stored outputs (cpu)
    python book/_scripts/execute.py --scale gpu --record F     # `make tiers`: gpu sizes, on the CPU
    python book/_scripts/execute.py --scale paper --cut --record F

Each chapter is copied alone into a temporary folder and run there with ``TTSBOOK_SCALE`` set,
as a reader on Colab would run it (nothing beside it but the installed package). ``--inplace``
writes the executed notebook back over the chapter (only at the ``cpu`` scale: the committed
outputs are the CPU record). ``--record`` writes, per chapter: wall seconds, whether every cell
(and so every assert) passed, and the work counted while it ran: FLOPs (``FlopCounterMode``)
and the number of tensor operations, from which ``t4_estimate_s`` estimates a Colab T4:
``ops * 15 µs + FLOPs / 4 TFLOP/s`` (eager PyTorch spends ~10–20 µs launching each op; a T4
sustains about half of its 8.1 TFLOP/s fp32 peak). Counting slows the run itself a little.

``--cut`` runs the same code path with training cut to a few steps (``CUTS`` below): for the
branches whose full training only a GPU can do in reasonable time. Claims that need the full
training are guarded in the chapters (``CHECK_CLAIMS``); code-path checks still run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from sync_colab import chapters  # noqa: E402

# Text substitutions of --cut, per chapter: (old, new), each must match exactly once.
CUTS = {
    "nonlinear_transformer": [
        ("RETRAIN = False", "RETRAIN = True"),
        ("steps=50_000,", "steps=3,"),
        ("warmup=1_000)", "warmup=1)"),
        ("N_PROMPTS = 2_000 if SCALE == \"cpu\" else 20_000",
         "N_PROMPTS = 2_000 if SCALE == \"cpu\" else 64"),
    ],
}

METER_START = '''
import torch as _t
from torch.utils._python_dispatch import TorchDispatchMode as _Mode
from torch.utils.flop_counter import FlopCounterMode as _Flops

class _Ops(_Mode):
    count = 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        _Ops.count += 1
        return func(*args, **(kwargs or {}))

_flops = _Flops(display=False)
_flops.__enter__()
_ops = _Ops()
_ops.__enter__()
'''
METER_STOP = '''
_ops.__exit__(None, None, None)
_flops.__exit__(None, None, None)
print("__METER__", _Ops.count, _flops.get_total_flops())
'''


def _cut(nb, name: str) -> None:
    for old, new in CUTS.get(name, []):
        hits = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
        if len(hits) != 1:
            raise ValueError(f"--cut: {old!r} found in {len(hits)} cells of {name}, expected 1")
        hits[0].source = hits[0].source.replace(old, new)


def _meter(nb) -> None:
    nb.cells.insert(0, nbformat.v4.new_code_cell(METER_START))
    nb.cells.append(nbformat.v4.new_code_cell(METER_STOP))


def _failure(text: str) -> str:
    """The failing line (the traceback's ``---->`` arrow) and the error, without colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in text.splitlines()]
    arrows = [line for line in lines if line.startswith("---->") or line.startswith("Cell In")]
    return " | ".join(arrows[-2:] + [line for line in lines if line][-1:])[:500]


def _read_meter(nb) -> tuple[int, int] | None:
    for out in nb.cells[-1].get("outputs", []):
        if "__METER__" in out.get("text", ""):
            _, ops, flops = out["text"].split()
            return int(ops), int(flops)
    return None


def execute(path: Path, scale: str, cut: bool, meter: bool, timeout: int) -> tuple[dict, object]:
    """Run one chapter alone in a temporary folder; return (its record, the executed notebook)."""
    nb = nbformat.read(path, as_version=4)
    if cut:
        _cut(nb, path.stem)
    if meter:
        _meter(nb)
    record = {"chapter": path.stem, "scale": scale, "cut": cut and path.stem in CUTS}
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(path, Path(folder) / path.name)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": folder}})
        start = time.perf_counter()
        try:
            client.execute()
            record["ok"], record["error"] = True, None
        except CellExecutionError as err:
            record["ok"], record["error"] = False, _failure(str(err))
        record["wall_s"] = round(time.perf_counter() - start, 1)
    counted = _read_meter(nb) if meter and record["ok"] else None
    if counted:
        record["ops"], record["flops"] = counted
        record["t4_estimate_s"] = round(counted[0] * 15e-6 + counted[1] / 4e12, 1)
    if meter:  # drop the injected cells again
        nb.cells = nb.cells[1:-1]
    return record, nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="default: every chapter of _toc.yml")
    parser.add_argument("--scale", choices=("cpu", "gpu", "paper"), default="cpu")
    parser.add_argument("--inplace", action="store_true", help="write outputs back (cpu only)")
    parser.add_argument("--cut", action="store_true", help="cut long training (see CUTS)")
    parser.add_argument("--record", type=Path, help="append per-chapter records to this JSON")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.inplace and (args.scale != "cpu" or args.cut):
        parser.error("--inplace writes the committed CPU record: use it with --scale cpu, no --cut")
    paths = args.chapters or [ROOT / f"{c}.ipynb" for c in chapters(ROOT / "_toc.yml")
                              if (ROOT / f"{c}.ipynb").exists()]
    os.environ.update(TTSBOOK_SCALE=args.scale, TQDM_DISABLE="1")
    records = json.loads(args.record.read_text()) if args.record and args.record.exists() else []
    failed = 0
    for path in paths:
        record, nb = execute(path, args.scale, args.cut, bool(args.record), args.timeout)
        print(json.dumps(record), flush=True)
        failed += not record["ok"]
        if args.inplace and record["ok"]:
            nbformat.write(nb, path)
        if args.record:
            records = [r for r in records if (r["chapter"], r["scale"]) != (path.stem, args.scale)]
            records.append(record)
            args.record.write_text(json.dumps(records, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
