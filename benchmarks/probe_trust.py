"""Probe the trust boundary of ``python -m ttsbook train|evaluate|sweep`` (issue 20).

Feeds the command line several hundred bad inputs and a handful of faults, each in its own
folder, with a time limit, and counts what must never happen:

- ``hang``: a command still running at its time limit (or local workers outliving their
  sweep);
- ``exit-1 traceback``: anything but exit status 0, 2 or 130, a Python traceback, or a
  refusal longer than one line (bad input is one line on stderr, exit 2);
- ``code executed``: a malicious pickle in a run folder touched its marker file;
- ``write outside``: a file created or changed anywhere in the probe's root other than the
  folder the command was given (``--out``);
- ``lost or mislabelled``: a run refused nothing but came back with a label its weights
  contradict, or a fault scenario finished without all of its results.

Bad inputs run in children forked from one interpreter that imported ttsbook once (each in its
own process group, killed at the limit); faults (two sweeps at once, a killed worker, a killed
parent, a folder taken away mid-run, Ctrl-C) run as real ``python -m ttsbook`` processes. It is
CPU-heavy: run it alone, one thread, e.g.

    OMP_NUM_THREADS=1 python benchmarks/probe_trust.py

It is a benchmark, not a unit test (``tests/test_trust.py`` holds one test per item); it prints
the counts and every failing case.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = os.environ | {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                   os.environ.get("PYTHONPATH", "")])}
TINY = ["--n-dims", "2", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--n-points", "4",
        "--cot-steps", "2", "--batch-size", "8", "--warmup", "1", "--steps", "4",
        "--device", "cpu"]
BASE = ("[base]\nn_dims = 2\nn_layer = 1\nn_head = 2\nn_embd = 16\ncot_steps = 2\nsteps = 4\n"
        "batch_size = 8\nwarmup = 1\nckpt_every = 2\n")
GOOD_GRID = BASE + "[grid]\nn_points = [3, 4]\n[eval]\nm = 4\nn_steps = 3\nn_prompts = 20\n"
LIMIT = 60  # seconds per bad input

# ---------------------------------------------------------------- the driver (one import)
DRIVER = r"""
import json, os, signal, sys, time, traceback
from ttsbook.__main__ import main
root, limit = sys.argv[1], float(sys.argv[2])
cases = json.load(open(sys.argv[3]))

def snapshot(skip):
    seen = {}
    for folder, dirs, files in os.walk(root):
        if folder.startswith(skip):
            dirs[:] = []
            continue
        for name in files + dirs:
            path = os.path.join(folder, name)
            if path.startswith(skip):
                continue
            try:
                st = os.lstat(path)  # a folder: only that it exists (its mtime moves with .stderr)
                seen[path] = "dir" if os.path.isdir(path) else (st.st_size, st.st_mtime_ns)
            except OSError:
                pass
    return seen

out = []
for case in cases:
    before = snapshot(case["allowed"])
    err_path = os.path.join(case["cwd"], ".stderr")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.chdir(case["cwd"])
        fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2), os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        try:
            code = main(case["argv"])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > limit:
            timed_out = True
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = 9
            break
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)  # leftovers of the case (workers) go too
    except OSError:
        pass
    after = snapshot(case["allowed"])
    changed = sorted(p for p in set(before) | set(after)
                     if before.get(p) != after.get(p) and p != err_path)
    err = open(err_path, errors="replace").read()
    out.append({"code": None if timed_out else os.waitstatus_to_exitcode(status),
                "timed_out": timed_out, "err": err, "changed": changed,
                "wall": time.monotonic() - start})
print(json.dumps(out))
"""


def cli(*argv, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttsbook", *map(str, argv)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- the inputs
def make_inputs(root: Path) -> dict:
    """A finished tiny run and broken copies of it, sweep files, a malicious pickle."""
    import torch

    inputs = root / "inputs"
    proc = cli("train", *TINY, "--out", inputs / "good", cwd=root)
    assert proc.returncode == 0, proc.stderr
    (good,) = (inputs / "good").iterdir()
    runs = {"good": good}

    def copy(name: str) -> Path:
        runs[name] = shutil.copytree(good, inputs / "broken" / name)
        return runs[name]

    payload = torch.load(good / "model.pt", weights_only=True)
    model = (good / "model.pt").read_bytes()
    config = json.loads((good / "config.json").read_text())
    for name, size in [("trunc0", 0), ("trunc10", 10), ("trunc_half", len(model) // 2),
                       ("trunc_last", len(model) - 1)]:
        (copy(name) / "model.pt").write_bytes(model[:size])
    (copy("garbage_model") / "model.pt").write_bytes(os.urandom(2000))
    (copy("no_model") / "model.pt").unlink()
    (copy("model_dir") / "model.pt").unlink()
    (runs["model_dir"] / "model.pt").mkdir()
    (copy("no_done") / "done").unlink()
    (copy("no_config") / "config.json").unlink()
    (copy("config_dir") / "config.json").unlink()
    (runs["config_dir"] / "config.json").mkdir()
    for name, text in [("bad_json", '{"preset": '), ("json_list", "[1, 2]"),
                       ("json_unknown", json.dumps(config | {"width": 3})),
                       ("json_wrong_type", json.dumps(config | {"n_points": "ten"}))]:
        (copy(name) / "config.json").write_text(text)
    (copy("latin1_json") / "config.json").write_bytes(b'{"preset": "caf\xe9"}')
    for key, value in [("n_points", 7), ("train_cov", "power_raw:1.0"), ("seed", 5),
                       ("cot_steps", 5), ("steps", 40), ("lr", 0.5)]:
        (copy(f"mismatch_{key}") / "config.json").write_text(json.dumps(config | {key: value}))
    dropped = {k: v for k, v in config.items() if k not in ("n_points", "train_cov")}
    (copy("mismatch_dropped") / "config.json").write_text(json.dumps(dropped))
    (copy("mismatch_model") / "config.json").write_text(
        json.dumps(config | {"model": config["model"] | {"n_embd": 32}}))
    stored = dict(payload)
    stored.pop("run_config")
    torch.save(stored, copy("no_run_config") / "model.pt")
    wrong = dict(payload, state_dict={k: v[..., :1] for k, v in payload["state_dict"].items()})
    torch.save(wrong, copy("wrong_shapes") / "model.pt")
    return {"runs": runs, "payload": payload, "model": model, "config": config}


class Touch:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ---------------------------------------------------------------- the bad inputs
def bad_inputs(root: Path, inputs: dict) -> list[dict]:
    """``{"argv", "kind", "label", "marker"}`` for every bad input; files they need are made
    here, each case in its own folder (``cwd``, ``out`` allowed)."""
    import torch

    cases = []

    def case(kind: str, label: str, argv: list, marker: Path | None = None, out=True):
        folder = root / "cases" / f"{len(cases):04d}"
        folder.mkdir(parents=True)
        argv = [str(a).replace("{OUT}", str(folder / "out")).replace("{DIR}", str(folder))
                for a in argv]
        cases.append({"kind": kind, "label": label, "argv": argv, "cwd": str(folder),
                      "allowed": str(folder / "out"), "marker": str(marker) if marker else ""})
        return folder

    train = ["train", *TINY, "--out", "{OUT}"]
    ints = ["n-dims", "n-layer", "n-head", "n-embd", "max-len", "cot-steps", "steps",
            "batch-size", "log-every", "ckpt-every", "init-seed", "seed", "warmup"]
    for opt in ints:
        for value in ["0", "-1", "1.5", "abc", "", "1e3", "0x10", str(10**30)]:
            if opt in ("steps", "log-every", "ckpt-every") and value == str(10**30):
                continue  # valid, only long: not a bad input
            case("train", f"--{opt} {value!r}", train + [f"--{opt}", value])
    for opt, value in [("n-layer", 10**12), ("cot-steps", 10**9), ("n-embd", 2**40),
                       ("batch-size", 10**12), ("n-points", 10**9), ("n-dims", 10**10),
                       ("max-len", 10**6), ("n-head", 3), ("init-seed", 2**63),
                       ("seed", 2**64)]:
        case("train", f"--{opt} {value}", train + [f"--{opt}", value]
             + (["--pos", "learned"] if opt == "max-len" else []))
    for opt in ["lr", "dropout"]:
        for value in ["0", "-1", "nan", "inf", "-inf", "1e300", "abc", "", "1e-400", "2"]:
            case("train", f"--{opt} {value!r}", train + [f"--{opt}", value])
    for opt in ["preset", "pos", "optimizer", "schedule"]:
        for value in ["", "x", "NONE", "none\n"]:
            case("train", f"--{opt} {value!r}", train + [f"--{opt}", value])
    for value in ["", "bogus", "power:", "power:-1", "power:nan", "power:1e400", "missing:99",
                  "missing:0:inf", "missing:a", "missing:1:-0.5", "isotropic+", "+", "power_raw",
                  "missing:0,0", "power:1:2", "isotropic\n"]:
        case("train", f"--train-cov {value!r}", train + ["--train-cov", value])
    for value in ["0", "5:3", "1:2:3", ":", "a:b", "-1", "0:4", "3:"]:
        case("train", f"--n-points {value!r}", train + ["--n-points", value])
    for value in ["mps", "meta", "cuda:99", "tpu", "", "cpu:x", "xla", "cuda:-1"]:
        case("train", f"--device {value!r}", train + ["--device", value])
    for value in ["0", "-1", "100000", "abc"]:
        case("train", f"--threads {value}", train + ["--threads", value])
    blocker = root / "inputs" / "a-file"
    blocker.write_text("")
    for value in [blocker, blocker / "sub", "/proc/ttsbook-probe"]:
        case("train", f"--out {value}", ["train", *TINY, "--out", value])
    case("train", "--warmup >= steps", train + ["--warmup", "10"])
    case("train", "unknown option", train + ["--width", "3"])
    case("train", "no subcommand", [])
    case("train", "learned n + K > max_len", train + ["--pos", "learned", "--max-len", "5"])
    # a malicious checkpoint on --resume
    for i, where in enumerate(["step", "history", "optimizer"]):
        marker = root / "markers" / f"ckpt{i}"
        folder = case("train", f"malicious checkpoint ({where})", train + ["--resume"], marker)
        run = shutil.copytree(inputs["runs"]["good"], folder / "out" / inputs["runs"]["good"].name)
        (run / "done").unlink()
        torch.save(inputs["payload"] | {where: Touch(str(marker))}, run / "checkpoint.pt")
    for name, size in [("empty", 0), ("short", 100)]:
        folder = case("train", f"{name} checkpoint", train + ["--resume"])
        run = shutil.copytree(inputs["runs"]["good"], folder / "out" / inputs["runs"]["good"].name)
        (run / "done").unlink()
        (run / "checkpoint.pt").write_bytes(inputs["model"][:size])

    # ------------------------------------------------ evaluate
    good, csv = inputs["runs"]["good"], ["--out", "{OUT}/e.csv", "--device", "cpu"]
    for name, run in inputs["runs"].items():
        if name != "good":
            case("evaluate", f"run {name}", ["evaluate", run, *csv, "--n-prompts", "20"])
    for i, where in enumerate(["extra", "config", "state_dict"]):
        marker = root / "markers" / f"model{i}"
        folder = case("evaluate", f"malicious model.pt ({where})", [], marker)
        run = shutil.copytree(good, folder / "run")
        torch.save(inputs["payload"] | {where: Touch(str(marker))}, run / "model.pt")
        cases[-1]["argv"] = ["evaluate", str(run), "--out", str(folder / "out" / "e.csv"),
                             "--device", "cpu"]
    for target in ["missing-run", blocker, root / "inputs"]:
        case("evaluate", f"RUN_DIR {target}", ["evaluate", target, *csv])
    for opt, values in {"m": ["0", "-1", "abc", str(10**9)],
                        "n-steps": ["0", "-1", "abc", str(10**9), "10001"],
                        "n-prompts": ["0", "-1", "abc", str(10**12)],
                        "eval-seed": ["-1", "abc", str(10**30)],
                        "test-cov": ["", "bogus", "missing:7", "missing:0:inf", "power:nan",
                                     "power:-2"]}.items():
        for value in values:
            case("evaluate", f"--{opt} {value!r}", ["evaluate", good, *csv, f"--{opt}", value])
    for out in ["{DIR}", blocker, blocker / "e.csv", "/proc/ttsbook-probe/e.csv"]:
        case("evaluate", f"--out {out}", ["evaluate", good, "--out", out, "--device", "cpu"])
        cases[-1]["allowed"] = cases[-1]["argv"][3]  # the file it was told to write
    case("evaluate", "--seed (the old spelling)", ["evaluate", good, *csv, "--seed", "1"])
    case("evaluate", "no RUN_DIR", ["evaluate", *csv])

    # ------------------------------------------------ sweep
    sweep = ["sweep", "--out", "{OUT}", "--device", "cpu", "--executor", "debug"]
    tiny_grid = ["--grid", "n_dims=2", "--grid", "n_layer=1", "--grid", "n_head=2", "--grid",
                 "n_embd=16", "--grid", "steps=4", "--grid", "batch_size=8", "--grid",
                 "warmup=1"]
    for name in ["../escaped", "../../escaped", "/tmp/ttsbook-probe-escaped", ".hidden", "a/b",
                 "a b", "x\ny", "", "x" * 200, "..", ".", "a\\b", "$(touch x)", "-x"]:
        case("sweep", f"--name {name!r}", sweep + tiny_grid + ["--name", name, "--dry-run"])
    for part in ["gpu\n#SBATCH --wrap=touch x", "a b", "../x", "", "$(id)", "gpu;ls"]:
        case("sweep", f"--partition {part!r}", sweep + tiny_grid + [
            "--executor", "slurm", "--partition", part, "--dry-run"])
    for opt, values in {"workers": ["0", "-1", str(10**9), "abc"], "time": ["0", "-1", "1e9"],
                        "gpus": ["-1", str(10**9)], "cpus": ["0", str(10**9)],
                        "array-parallelism": ["0", str(10**12)], "requeues": ["-1", "10**9"],
                        "seeds": ["a", "-1", str(10**30), "1,,x", "1.5"],
                        "executor": ["ray", ""]}.items():
        for value in values:
            case("sweep", f"--{opt} {value!r}", sweep + tiny_grid + [f"--{opt}", value,
                                                                    "--dry-run"])
    for item in ["n_points", "=3", "width=3", "n_points=", "steps=x", "steps=1.5",
                 "train_cov=5", "train_cov=bogus", "pos=sideways", "n_layer=1000000000000",
                 "cot_steps=1000000000", "lr=inf", "seed=-1", "warmup=50"]:
        case("sweep", f"--grid {item!r}", sweep + tiny_grid + ["--grid", item, "--dry-run"])
    case("sweep", "--test-cov missing:7 (d = 2)", sweep + tiny_grid + ["--test-cov", "missing:7"])
    case("sweep", "no grid", sweep)
    case("sweep", "no such sweep file", sweep + ["nosuch"])
    case("sweep", "a folder as sweep file", sweep + [root / "inputs"])
    files = {
        "empty": "", "only_name": "name = 'x'\n", "invalid": "[base\n", "grid_int": "grid = 5\n",
        "grid_list": "grid = [1, 2]\n", "grid_blocks_empty": BASE + "[[grid]]\nn_points = 3\n"
        "[[grid]]\n", "eval_int": BASE + "eval = 3\n", "base_list": "base = [1]\n",
        "cov_int": "[base]\ntrain_cov = 5\n", "steps_float": "[base]\nsteps = 1.5\n",
        "steps_text": "[base]\nsteps = 'x'\n", "steps_bool": "[base]\nsteps = true\n",
        "seeds_text": BASE + "seeds = 'x'\n", "seeds_negative": BASE + "seeds = [-1]\n",
        "seeds_huge": BASE + "seeds = [100000000000000000000000]\n", "name_int": "name = 5\n"
        + BASE, "name_escape": "name = '../x'\n" + BASE, "name_newline": "name = 'e3\\ntouch x #'\n"
        + BASE, "unknown_key": BASE + "sweeps = [1]\n", "unknown_field": "[base]\nwidth = 3\n",
        "eval_unknown": BASE + "[eval]\nm_test = 3\n", "eval_m0": BASE + "[eval]\nm = 0\n",
        "eval_cov": BASE + "[eval]\ntest_cov = 'missing:7'\n", "eval_cov_int": BASE
        + "[eval]\ntest_cov = 5\n", "huge_layers": "[base]\nn_layer = 1000000000000\n",
        "huge_batch": BASE.replace("batch_size = 8", "batch_size = 1000000000000"),
        "empty_axis": BASE + "[grid]\nn_points = []\n", "eval_empty": BASE + "[eval]\nm = []\n",
        "pos_int": "[base]\npos = 3\n", "n_points_dict": "[base]\nn_points = {a = 1}\n",
        "model_table": "[base]\nmodel = 3\n", "lr_inf": "[base]\nlr = inf\n",
        "lr_nan": "[base]\nlr = nan\n", "device_key": "[base]\ndevice = 'mps'\n",
        "n_points_range": "[base]\nn_points = [5, 2]\n", "dotted": "[base.model]\nn_layer = 2\n",
    }
    for name, text in files.items():
        path = root / "inputs" / "sweeps" / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        case("sweep", f"sweep file {name}", sweep + [path])
    for name, data in [("latin1", "name = 'caf\xe9'\n".encode("latin-1")),
                       ("binary", os.urandom(300)), ("nul", b"\0\0\0")]:
        path = root / "inputs" / "sweeps" / f"{name}.toml"
        path.write_bytes(data)
        case("sweep", f"sweep file {name}", sweep + [path])
    # a finished but unscored run whose weights would run code, under a sweep's --out
    (root / "inputs" / "sweeps" / "good.toml").write_text(GOOD_GRID)
    marker = root / "markers" / "sweep"
    folder = case("sweep", "malicious model.pt in --out", sweep + [
        root / "inputs" / "sweeps" / "good.toml"], marker)
    proc = cli("sweep", root / "inputs" / "sweeps" / "good.toml", "--executor", "debug",
               "--device", "cpu", "--out", folder / "out", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    for run in (folder / "out").glob("*/model.pt"):
        torch.save(inputs["payload"] | {"x": Touch(str(marker))}, run)
    for scores in (folder / "out").glob("*/scores-*.csv"):
        scores.unlink()
    return cases


def judge(case: dict, result: dict) -> list[str]:
    """What went wrong with one bad input (empty: nothing)."""
    wrong = []
    if result["timed_out"]:
        wrong.append("hang")
    elif result["code"] not in (0, 2, 130) or "Traceback" in result["err"] \
            or (result["code"] == 2 and result["err"].count("\n") != 1):
        wrong.append("exit-1 traceback")
    if case["marker"] and Path(case["marker"]).exists():
        wrong.append("code executed")
    if result["changed"]:
        wrong.append("write outside")
    if result["code"] == 0 and case["label"].startswith("run mismatch"):
        wrong.append("lost or mislabelled")
    return wrong


# ---------------------------------------------------------------- the faults
def _workers(folder: Path) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"spawn_main" in (proc / "cmdline").read_bytes() \
                    and (proc / "cwd").resolve() == folder.resolve() \
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _popen(argv, folder: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ttsbook", *map(str, argv)], cwd=folder,
                            env=ENV, stdout=subprocess.DEVNULL,
                            stderr=open(folder / f"err{time.monotonic_ns()}", "w"), **kw)


def faults(root: Path) -> list[tuple[str, list[str]]]:
    """Fault scenarios as real processes: ``(label, what went wrong)``."""
    results = []
    long_grid = GOOD_GRID.replace("steps = 4", "steps = 2000").replace("ckpt_every = 2",
                                                                       "ckpt_every = 50")
    local = ["--executor", "local", "--workers", "2", "--device", "cpu"]

    def scenario(label):
        folder = root / "faults" / label.replace(" ", "_")
        folder.mkdir(parents=True)
        (folder / "grid.toml").write_text(long_grid if "kill" in label else GOOD_GRID)
        return folder

    # two sweeps on one folder at once: both finish, all results there
    folder = scenario("two sweeps at once")
    procs = [_popen(["sweep", folder / "grid.toml", "--executor", "debug", "--device", "cpu",
                     "--out", folder / "out"], folder) for _ in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    table = folder / "out" / "grid.csv"
    rows = table.read_text().count("\n") - 1 if table.exists() else 0
    results.append(("two sweeps at once", (["exit-1 traceback"] if codes != [0, 0] else [])
                    + (["lost or mislabelled"] if rows != 2 * 3 else [])))
    # the parent of a local sweep killed: its workers must go too
    folder = scenario("kill the parent")
    sweep = _popen(["sweep", folder / "grid.toml", *local, "--out", folder / "out"], folder)
    _wait_for(lambda: len(_workers(folder)) == 2, 120)
    sweep.kill()
    sweep.wait()
    orphans = not _wait_for(lambda: not _workers(folder), 15)
    for pid in _workers(folder):
        os.kill(pid, signal.SIGKILL)
    results.append(("kill the parent", ["hang"] if orphans else []))
    # one worker killed: its run fails alone, the other finishes and is collected
    folder = scenario("kill a worker")
    sweep = _popen(["sweep", folder / "grid.toml", *local, "--out", folder / "out"], folder)
    _wait_for(lambda: len(_workers(folder)) == 2
              and len(list((folder / "out").glob("*/config.json"))) == 2, 120)
    workers = _workers(folder)
    if workers:
        os.kill(workers[0], signal.SIGKILL)
    try:
        code = sweep.wait(timeout=300)
    except subprocess.TimeoutExpired:
        sweep.kill()
        code = None
    done = len(list((folder / "out").glob("*/done")))
    results.append(("kill a worker", (["hang"] if code is None else [])
                    + (["exit-1 traceback"] if code not in (1, None) else [])
                    + (["lost or mislabelled"] if done != 1 else [])))
    # the run folder taken away mid-run, then Ctrl-C and resume
    folder = scenario("folder taken away")
    train = _popen(["train", *TINY[:-4], "--steps", "100000", "--ckpt-every", "20", "--device",
                    "cpu", "--out", folder / "out"], folder)
    _wait_for(lambda: list((folder / "out").glob("*/checkpoint.pt")), 60)
    (run,) = (folder / "out").iterdir()
    run.rename(folder / "moved")
    run.write_text("")
    try:
        code = train.wait(timeout=60)
    except subprocess.TimeoutExpired:
        train.kill()
        code = None
    results.append(("folder taken away", ["hang"] if code is None
                    else ([] if code == 2 else ["exit-1 traceback"])))
    folder = scenario("ctrl-c then resume")
    argv = ["train", *TINY[:-4], "--steps", "3000", "--ckpt-every", "50", "--device", "cpu",
            "--out", folder / "out"]
    train = _popen(argv, folder)
    _wait_for(lambda: list((folder / "out").glob("*/checkpoint.pt")), 60)
    train.send_signal(signal.SIGINT)
    code = train.wait(timeout=60)
    again = cli(*argv, "--resume", cwd=folder, timeout=300)
    finished = list((folder / "out").glob("*/done"))
    results.append(("ctrl-c then resume", (["exit-1 traceback"] if code != 130
                                           or again.returncode != 0 else [])
                    + (["lost or mislabelled"] if len(finished) != 1 else [])))
    return results


def main() -> int:
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="ttsbook-probe-"))
    (root / "markers").mkdir()
    inputs = make_inputs(root)
    cases = bad_inputs(root, inputs)
    (root / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(root), str(LIMIT),
                           str(root / "cases.json")], env=ENV, capture_output=True, text=True,
                          cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdicts = [(c, r, judge(c, r)) for c, r in
                zip(cases, json.loads(proc.stdout.splitlines()[-1]))]
    escaped = Path("/tmp/ttsbook-probe-escaped.csv")
    if escaped.exists():
        verdicts.append(({"kind": "sweep", "label": "--name /tmp/..."}, {}, ["write outside"]))
    fault_results = faults(root)
    kinds = ["hang", "exit-1 traceback", "code executed", "write outside", "lost or mislabelled"]
    counts = {k: sum(k in w for _, _, w in verdicts) + sum(k in w for _, w in fault_results)
              for k in kinds}
    by_command = {}
    for c, r, _ in verdicts:
        by_command.setdefault(c["kind"], []).append(r.get("code"))
    print(f"probe_trust: {len(verdicts)} bad inputs "
          + ", ".join(f"{k} {len(v)}" for k, v in by_command.items())
          + f" + {len(fault_results)} faults, in {time.monotonic() - started:.0f} s")
    print("exit status of the bad inputs: "
          + ", ".join(f"{code}: {n}" for code, n in sorted(
              {code: sum(c == code for v in by_command.values() for c in v)
               for v in by_command.values() for code in v}.items(), key=str)))
    for kind in kinds:
        print(f"  {kind:20s} {counts[kind]}")
    for c, r, wrong in verdicts:
        if wrong:
            print(f"FAIL {c['kind']} {c['label']}: {wrong} (exit {r.get('code')}): "
                  f"{r.get('err', '')[-400:]!r} {r.get('changed', '')}")
    for label, wrong in fault_results:
        print(f"{'FAIL' if wrong else 'ok  '} fault: {label} {wrong}")
    if "--keep" not in sys.argv:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
