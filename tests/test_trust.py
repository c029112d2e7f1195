"""The trust boundary (issue 20): nothing read from disk runs code, names stay inside their
folder, the weights decide what a run is, sweeps survive crashes and each other, and bad input
is one line with exit status 2 -- all through ``python -m ttsbook`` as a user runs it."""
import os
import shutil
import subprocess
import sys
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
k_max = 3
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
