"""The trust boundary (issue 20): nothing read from disk runs code, names stay inside their
folder, the weights decide what a run is, sweeps survive crashes and each other, and bad input
is one line with exit status 2 -- all through ``python -m ttsbook`` as a user runs it."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ENV = os.environ | {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join(sys.path)}
TINY = ["--n-dims", "2", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--n-points", "4",
        "--cot-steps", "2", "--batch-size", "8", "--warmup", "1", "--device", "cpu"]


def cli(*argv, timeout=120, cwd=None) -> tuple[int, str, str]:
    """``python -m ttsbook ARGV`` in a fresh process, run outside the repository (so the
    package on ``PYTHONPATH`` is the one tested): (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "ttsbook", *map(str, argv)], capture_output=True,
                          text=True, env=ENV, timeout=timeout, cwd=cwd or Path.home())
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line(code: int, err: str, *words: str) -> None:
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (code, err)
    assert all(w in err for w in words), err


class Touch:
    """Unpickling this runs ``touch MARKER``: what a malicious run file would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run, trained through the command line."""
    root = tmp_path_factory.mktemp("runs")
    code, _, err = cli("train", *TINY, "--steps", "4", "--out", root)
    assert code == 0, err
    (run,) = root.iterdir()
    return run


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# ---------------------------------------------------------------- 1. nothing read runs code
def test_1_a_malicious_model_or_checkpoint_never_runs(finished, tmp_path):
    marker = tmp_path / "PWNED"
    bad = copy_run(finished, tmp_path / "bad")
    payload = torch.load(bad / "model.pt", weights_only=True)
    torch.save(payload | {"extra": Touch(marker)}, bad / "model.pt")
    code, _, err = cli("evaluate", bad, "--out", tmp_path / "e.csv", "--device", "cpu")
    assert_one_line(code, err, "RUN_DIR", "model.pt", "could run code")
    # the same through a checkpoint on train --resume
    root = tmp_path / "root"
    copy_run(finished, root / finished.name)
    (root / finished.name / "done").unlink()
    torch.save(payload | {"step": Touch(marker)}, root / finished.name / "checkpoint.pt")
    code, _, err = cli("train", *TINY, "--steps", "4", "--out", root, "--resume")
    assert_one_line(code, err, "--resume", "checkpoint.pt", "could run code")
    assert not marker.exists()


def test_1_every_file_the_project_writes_loads_with_weights_only(finished, tmp_path):
    from ttsbook.gpt import GPT, GPTConfig
    from ttsbook.utils import save_checkpoint
    for name in ("model.pt",):
        torch.load(finished / name, weights_only=True)
    path = save_checkpoint(tmp_path / "c.pt", GPT(GPTConfig(n_dims=2, n_layer=1, n_head=1,
                                                            n_embd=4)),
                           history=[{"loss": np.float64(0.5), "n": np.int64(3)}],
                           table=np.zeros(3))
    back = torch.load(path, weights_only=True)
    assert back["history"] == [{"loss": 0.5, "n": 3}] and torch.equal(back["table"],
                                                                       torch.zeros(3))


# ---------------------------------------------------------------- 2. names stay names
def test_2_names_that_become_paths_or_job_parameters_are_checked(tmp_path):
    marker, out = tmp_path / "PWNED", tmp_path / "out"
    (tmp_path / "evil.toml").write_text(f'name = "e3\\ntouch {marker} #"\n[grid]\nsteps = [5]\n')
    (tmp_path / "e v.toml").write_text("[grid]\nsteps = [5]\n")
    grid = ["--grid", "steps=5", "--out", out, "--device", "cpu", "--dry-run"]
    for argv, option in [
            (["sweep", "--name", "../escaped", *grid], "--name"),
            (["sweep", "--name", ".hidden", *grid], "--name"),
            (["sweep", "--name", "a/b", *grid], "--name"),
            (["sweep", tmp_path / "evil.toml", "--out", out, "--dry-run"], "SWEEP"),
            (["sweep", tmp_path / "e v.toml", "--out", out, "--dry-run"], "SWEEP"),
            (["sweep", "--partition", "gpu\n#SBATCH --wrap=touch", "--executor", "slurm", *grid],
             "--partition")]:
        code, _, err = cli(*argv)
        assert_one_line(code, err, option, "letters, digits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e v.toml", "evil.toml"]


# ---------------------------------------------------------------- 3. the weights decide
def test_3_a_config_json_that_disagrees_with_the_weights_is_refused(tmp_path):
    import json
    import ttsbook
    shipped = Path(ttsbook.__file__).parent / "data" / "gpt" / "cpu-n20-powerraw1.0-k8-321ac81e"
    run = copy_run(shipped, tmp_path / shipped.name)
    config = json.loads((run / "config.json").read_text())
    del config["n_points"], config["train_cov"]  # now it reads as n = 10, isotropic
    (run / "config.json").write_text(json.dumps(config))
    code, _, err = cli("evaluate", run, "--out", tmp_path / "e.csv", "--n-prompts", "10",
                       "--device", "cpu")
    assert_one_line(code, err, "RUN_DIR", "n_points: 10 vs 20",
                    "train_cov: 'isotropic' vs 'power_raw:1.0'")
    assert not (tmp_path / "e.csv").exists()


# ---------------------------------------------------------------- 4. two sweeps, one folder
SWEEP_TOML = """
seeds = [0, 1]
[base]
n_dims = 2
n_layer = 1
n_head = 2
n_embd = 16
cot_steps = 2
steps = 60
batch_size = 8
warmup = 1
ckpt_every = 5
[grid]
n_points = [3, 4]
[eval]
m = 4
n_steps = 3
n_prompts = 50
"""
# A sweep in this process, each training logged (name, pid) to LOG: Trainer.fit is wrapped
# here, in the test's driver only, to count how often each run is trained.
COUNTING_SWEEP = """
import os, sys
from ttsbook.__main__ import main
from ttsbook.train import Trainer
fit = Trainer.fit
def counted(self, *args, desc="train", **kwargs):
    with open(os.environ["LOG"], "a") as log:
        log.write(f"{desc} {os.getpid()}\\n")
    return fit(self, *args, desc=desc, **kwargs)
Trainer.fit = counted
sys.exit(main(sys.argv[1:]))
"""


def test_4_two_sweeps_on_one_folder_both_finish_each_run_trained_once(tmp_path):
    (tmp_path / "grid.toml").write_text(SWEEP_TOML)
    argv = ["sweep", str(tmp_path / "grid.toml"), "--executor", "debug", "--device", "cpu",
            "--out", str(tmp_path / "out")]
    env = ENV | {"LOG": str(tmp_path / "log")}
    procs = [subprocess.Popen([sys.executable, "-c", COUNTING_SWEEP, *argv], env=env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    trained = (tmp_path / "log").read_text().split()[::2]
    assert len(trained) == 4 and len(set(trained)) == 4, trained  # each run once, all four
    table = (tmp_path / "out" / "grid.csv").read_text()
    assert table.count("\n") == 1 + 4 * 3  # header, 4 runs x k = 1..3
    assert not list((tmp_path / "out").rglob("*.tmp"))


# ---------------------------------------------------------------- 5. workers and their parent
LONG_TOML = SWEEP_TOML.replace("steps = 60", "steps = 100000").replace("ckpt_every = 5",
                                                                      "ckpt_every = 50")


def _workers(folder: Path) -> list[int]:
    """The sweep's worker processes: spawned (``spawn_main`` in their command), in ``folder``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"spawn_main" in (proc / "cmdline").read_bytes() \
                    and (proc / "cwd").resolve() == folder.resolve() and _alive(int(proc.name)):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _sweep(tmp_path, toml: str) -> subprocess.Popen:
    """A local sweep of ``toml`` on 2 workers; its output goes to files (an orphaned worker
    would hold a pipe open)."""
    (tmp_path / "grid.toml").write_text(toml)
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "ttsbook", "sweep",
                                 tmp_path / "grid.toml", "--executor", "local", "--workers", "2",
                                 "--device", "cpu", "--out", tmp_path / "out"], env=ENV,
                                cwd=tmp_path, stdout=out, stderr=err)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_5_workers_die_with_their_parent(tmp_path):
    sweep = _sweep(tmp_path, LONG_TOML)
    workers = []
    try:
        assert _wait_for(lambda: len(list((tmp_path / "out").glob("*/config.json"))) == 2, 120)
        workers = _workers(tmp_path)
        assert len(workers) == 2
        sweep.kill()  # SIGKILL: no cleanup in the parent
        sweep.wait()
        assert _wait_for(lambda: not _workers(tmp_path), 10), "orphaned workers train on"
        workers = _workers(tmp_path)
    finally:
        sweep.kill()
        sweep.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_5_a_killed_worker_fails_its_run_alone_and_the_summary_says_how_to_retry(tmp_path):
    toml = SWEEP_TOML.replace("steps = 60", "steps = 1500").replace("seeds = [0, 1]",
                                                                    "seeds = [0, 1, 2]")
    sweep = _sweep(tmp_path, toml)
    try:
        assert _wait_for(lambda: len(_workers(tmp_path)) == 2 and len(
            list((tmp_path / "out").glob("*/config.json"))) == 2, 120)
        os.kill(_workers(tmp_path)[0], signal.SIGKILL)
        sweep.wait(timeout=120)
    finally:
        sweep.kill()
        sweep.wait()
        for pid in _workers(tmp_path):
            os.kill(pid, signal.SIGKILL)
    err = (tmp_path / "stderr").read_text()
    assert sweep.returncode == 1, err
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err, err
    assert "failed" in lines[0] and "killed by SIGKILL" in lines[0], err
    assert "1 of 6 runs failed" in lines[1] and "python -m ttsbook sweep" in lines[1], err
    assert len(list((tmp_path / "out").glob("*/done"))) == 5  # the others went on
    table = (tmp_path / "out" / "grid.csv").read_text()
    assert table.count("\n") == 1 + 5 * 3


# ---------------------------------------------------------------- 6. broken files, one line
def test_6_truncated_files_are_one_line_naming_the_file(finished, tmp_path):
    bad = copy_run(finished, tmp_path / "bad")
    data = (bad / "model.pt").read_bytes()
    (bad / "model.pt").write_bytes(data[:len(data) // 2])
    code, _, err = cli("evaluate", bad, "--out", tmp_path / "e.csv", "--device", "cpu")
    assert_one_line(code, err, "RUN_DIR", "model.pt", "truncated", "copy it again")
    root = tmp_path / "root"
    run = copy_run(finished, root / finished.name)
    (run / "done").unlink()
    (run / "checkpoint.pt").write_bytes(data[:len(data) // 3])
    code, _, err = cli("train", *TINY, "--steps", "4", "--out", root, "--resume")
    assert_one_line(code, err, "--resume", "checkpoint.pt", "truncated", "starts over")


def test_6_a_run_folder_that_cannot_be_written_mid_run_is_one_line(tmp_path):
    with open(tmp_path / "err", "w") as err_file:
        train = subprocess.Popen([sys.executable, "-m", "ttsbook", "train", *TINY, "--steps",
                                  "100000", "--ckpt-every", "20", "--out", tmp_path / "out"],
                                 env=ENV, cwd=tmp_path, stderr=err_file,
                                 stdout=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: list((tmp_path / "out").glob("*/checkpoint.pt")), 60)
        (run,) = (tmp_path / "out").iterdir()
        if os.geteuid() == 0:  # root writes through a read-only mode: take the folder away
            run.rename(tmp_path / "moved")
            run.write_text("")
        else:
            run.chmod(0o555)
        train.wait(timeout=60)
    finally:
        train.kill()
        train.wait()
        if os.geteuid() != 0:
            run.chmod(0o755)
    assert_one_line(train.returncode, (tmp_path / "err").read_text(), "cannot write",
                    "checkpoint.pt", "run the same command again")


# ---------------------------------------------------------------- 7. bad input, fast, one line
# One interpreter imports ttsbook once, then forks a child per command line (as test_cli.py).
DRIVER = """
import json, os, sys, tempfile, traceback
from ttsbook.__main__ import main
results = []
for argv in json.loads(sys.argv[1]):
    err = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        os.dup2(err.fileno(), 2), os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    err.seek(0)
    results.append((code, err.read().decode()))
print(json.dumps(results))
"""


def many(argvs: list[list], timeout: float = 180) -> list[tuple[int, str]]:
    import json
    argvs = [[str(a) for a in argv] for argv in argvs]
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True,
                          text=True, env=ENV, timeout=timeout, cwd=Path.home())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_7_bad_sizes_seeds_devices_and_files_fail_fast_in_one_line(finished, tmp_path):
    out = ["--out", tmp_path / "runs"]
    train = ["train", *TINY, "--steps", "4", *out]
    files = {"grid_int": "grid = 5\n", "eval_int": "[grid]\nsteps = [5]\neval = 3\n",
             "cov_int": "[base]\ntrain_cov = 5\n", "seeds_text": "seeds = 'x'\n[grid]\nsteps = [5]\n",
             "steps_float": "[base]\nsteps = 1.5\n", "grid_list": "grid = [1, 2]\n"}
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text)
    (tmp_path / "latin1.toml").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    cases = [  # (argv, the option named)
        ([*train, "--n-layer", 10**12], "--n-layer"), ([*train, "--cot-steps", 10**9], "--cot-steps"),
        ([*train, "--threads", 100000], "--threads"), ([*train, "--lr", "1e300"], "--lr"),
        ([*train, "--lr", "inf"], "--lr"), ([*train, "--lr", "nan"], "--lr"),
        ([*train, "--n-head", "1", "--n-embd", 2**40], "--n-embd"),
        ([*train, "--batch-size", 10**12], "--batch-size"), ([*train, "--n-points", 10**9], "--n-points"),
        ([*train, "--n-dims", 10**10], "--n-dims"),
        ([*train, "--init-seed", 10**30], "--init-seed"), ([*train, "--seed", 2**63], "--seed"),
        ([*train, "--device", "mps"], "--device"), ([*train, "--device", "meta"], "--device"),
        ([*train, "--train-cov", "missing:0:inf"], "--train-cov"),
        ([*train, "--train-cov", "power:1e400"], "--train-cov"),
        (["evaluate", finished, "--n-steps", 10**9, "--out", tmp_path / "e.csv"], "--n-steps"),
        (["evaluate", finished, "--n-prompts", 10**12, "--out", tmp_path / "e.csv"], "--n-prompts"),
        (["evaluate", finished, "--m", 10**9, "--out", tmp_path / "e.csv"], "--m"),
        (["evaluate", finished, "--eval-seed", 10**30, "--out", tmp_path / "e.csv"], "--eval-seed"),
        (["evaluate", finished, "--out", tmp_path], "--out"),
        (["sweep", "--grid", "steps=5", "--workers", 10**9, *out], "--workers"),
        *[(["sweep", tmp_path / f"{name}.toml", *out], "SWEEP") for name in files],
        (["sweep", tmp_path / "latin1.toml", *out], "SWEEP"),
    ]
    for (argv, option), (code, err) in zip(cases, many([argv for argv, _ in cases])):
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, code, err)
        assert option in err, (argv, err)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---------------------------------------------------------------- 8. checked before training
def test_8_checked_before_training_and_failed_starts_leave_nothing(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "named.toml").write_text("name = 'only-a-name'\n")
    runs = tmp_path / "runs"
    sweep = ["sweep", "--executor", "debug", "--device", "cpu", "--out", runs]
    small = ["--grid", "n_dims=2", "--grid", "n_layer=1", "--grid", "n_head=2", "--grid",
             "n_embd=16", "--grid", "steps=5"]
    cases = [
        ([*sweep, *small, "--test-cov", "missing:7"], "--test-cov", ["missing:7", "d = 2"]),
        ([*sweep, tmp_path / "empty.toml"], "SWEEP", ["empty sweep"]),
        ([*sweep, tmp_path / "named.toml"], "SWEEP", ["empty sweep"]),
        (["train", *TINY, "--steps", "50", "--optimizer", "sgd", "--lr", "1e6", "--out", runs],
         "--lr", ["at step"]),  # diverges before its first checkpoint
    ]
    for (argv, option, words), (code, err) in zip(cases, many([c[0] for c in cases])):
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, code, err)
        assert option in err and all(w in err for w in words), (argv, err)
    assert not runs.exists() or not any(runs.iterdir()), list(runs.rglob("*"))
