"""``python -m ttsbook``: help, one-line errors with exit code 2, Ctrl-C and resume, train then evaluate."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from ttsbook.runs import RunConfig, RunDir, load_config, load_run, train_argv, train_run
from ttsbook.runs.cli import main

TINY = ["--n-dims", "2", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--n-points", "4",
        "--cot-steps", "3", "--batch-size", "8", "--device", "cpu"]
ENV = os.environ | {"TQDM_DISABLE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}

# One interpreter imports ttsbook once, then forks a child per command line: each child is a
# separate process running the CLI with its own stderr and exit status, as `python -m ttsbook`
# would (an exception escaping main prints its traceback, exactly as the interpreter does).
DRIVER = """
import json, os, sys, tempfile, traceback
from ttsbook.runs.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err, out = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        os.dup2(err.fileno(), 2), os.dup2(out.fileno(), 1)
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


def run_cli_many(argvs: list[list[str]]) -> list[tuple[int, str]]:
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def run_cli(argv, capsys):
    """In-process, for the commands that succeed."""
    code = main(argv)
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return train_run(RunConfig(model={"n_dims": 2, "n_layer": 1, "n_head": 2, "n_embd": 16}, n_points=4,
                               cot_steps=2, steps=3, batch_size=4), root, device="cpu")


def _broken_runs(finished, tmp_path) -> dict:
    """Copies of a finished run, each broken in one way."""
    runs = {}
    for name in ("no_model", "bad_model", "bad_config", "not_done"):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        for f in finished.path.iterdir():
            (runs[name] / f.name).write_bytes(f.read_bytes())
    RunDir(runs["no_model"]).model_file.unlink()
    RunDir(runs["bad_model"]).model_file.write_bytes(b"not a checkpoint")
    RunDir(runs["bad_config"]).config_file.write_text('{"preset": "cpu",')
    RunDir(runs["not_done"]).done_file.unlink()
    return runs


def test_every_bad_input_is_one_line_naming_the_option(finished, tmp_path):
    runs = _broken_runs(finished, tmp_path)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    interrupted = RunDir.of(RunConfig(preset="cpu", n_points=7, steps=40), tmp_path / "r")
    interrupted.path.mkdir(parents=True)
    interrupted.checkpoint_file.write_bytes(b"\0")
    csv = ["--out", str(tmp_path / "e.csv")]
    cases = [  # (argv, the option named, words the message must hold)
        (["train", "--train-cov", "missing:99"], "--train-cov", ["[0, 5)", "99"]),
        (["train", "--train-cov", "power:-1"], "--train-cov", ["A must be a number >= 0"]),
        (["train", "--train-cov", "powr:1"], "--train-cov", ["unknown name 'powr'", "power_raw:A"]),
        (["train", "--out", str(blocked / "runs")], "--out", ["cannot write"]),
        (["train", "--n-points", "7", "--steps", "40", "--out", str(tmp_path / "r")], "--resume",
         ["interrupted run", "--resume"]),
        (["train", "--n-points", "7", "--steps", "40", "--out", str(tmp_path / "r"), "--resume"], "--resume",
         ["checkpoint.pt is unreadable"]),
        (["train", "--steps", "10", "--warmup", "50"], "--warmup", ["below steps = 10"]),
        (["train", "--steps", "0"], "--steps", [">= 1"]),
        (["train", "--steps", "1e3"], "--steps", ["expected an integer"]),
        (["train", "--n-points", "9:3"], "--n-points", ["LO <= HI"]),
        (["train", "--n-points", "x"], "--n-points", ["expected N|LO:HI"]),
        (["train", "--lr", "-1"], "--lr", ["> 0"]),
        (["train", "--n-head", "3"], "--n-head", ["divide"]),
        (["train", "--preset", "huge"], "--preset", ["invalid choice", "'cpu'", "'paper'"]),
        (["train", "--device", "tpu"], "--device", ["'cuda[:i]'"]),
        (["train", "--threads", "0"], "--threads", [">= 1"]),
        (["evaluate", str(runs["no_model"]), *csv], "RUN_DIR", ["model.pt is missing"]),
        (["evaluate", str(runs["bad_model"]), *csv], "RUN_DIR", ["model.pt is unreadable"]),
        (["evaluate", str(runs["bad_config"]), *csv], "RUN_DIR", ["config.json is not valid JSON"]),
        (["evaluate", str(runs["not_done"]), *csv], "RUN_DIR", ["not a finished run"]),
        (["evaluate", str(finished), "--test-cov", "missing:99", *csv], "--test-cov", ["[0, 2)"]),
        (["evaluate", str(finished), "--out", str(blocked / "e.csv")], "--out", ["cannot write"]),
        (["evaluate", str(finished)], "--out", ["required"]),
        (["fit"], "argument {train,evaluate,sweep}", ["invalid choice"]),
    ]
    if not torch.cuda.is_available():
        cases.append((["train", "--device", "cuda"], "--device", ["not available", "no CUDA"]))
    for (argv, option, words), (code, err) in zip(cases, run_cli_many([c[0] for c in cases]), strict=True):
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, code, err)
        assert option in err, (argv, err)
        assert all(w in err for w in words), (argv, err)


def test_help_lists_every_field_without_markup(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--preset", "--pos", "--n-points", "--train-cov", "--cot-steps", "--steps", "--optimizer",
                   "--batch-size", "--lr", "--warmup", "--seed", "--init-seed", "--n-layer", "--out", "--resume",
                   "--device", "--threads", "--debug", "power_raw:A", "(default: 2500)"):
        assert option in out
    assert "``" not in out and ":func:" not in out
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    for option in ("RUN_DIR", "--test-cov", "--m", "--n-steps", "--n-prompts", "--eval-seed", "--out"):
        assert option in out


def test_short_run_then_already_done_then_evaluate(tmp_path, capsys):
    """``--steps 50`` works with the default warmup; a second call says the run is done."""
    argv = ["train", *TINY, "--steps", "50", "--out", str(tmp_path / "runs")]
    code, out = run_cli(argv, capsys)
    (run,) = (tmp_path / "runs").iterdir()
    assert code == 0 and RunDir(run).finished and load_config(run).train.warmup == 5
    code, out = run_cli(argv, capsys)
    assert code == 0 and out.out == f"already done: {run}\n"
    csv = tmp_path / "out" / "errors.csv"
    code, _ = run_cli(["evaluate", str(run), "--m", "7", "--n-steps", "3", "--n-prompts", "50",
                       "--test-cov", "power:1.0", "--out", str(csv)], capsys)
    df = pd.read_csv(csv)
    assert code == 0 and list(df.columns[:6]) == ["predictor", "k", "mean", "ci_low", "ci_high", "median"]
    assert df["k"].tolist() == [1, 2, 3] and (df["test_cov"] == "power:1.0").all()
    assert (df["m"] == 7).all() and (df["n"] == 4).all() and (df["n_lo"] == 4).all() and (df["run"] == run.name).all()


def test_train_argv_reproduces_the_run_config(tmp_path, capsys):
    """The command a chapter prints (``train_argv``) trains exactly the run it names."""
    config = RunConfig(model={"pos": "learned", "n_layer": 1, "n_embd": 16}, n_points=[3, 5],
                       train_cov="power:1.0", cot_steps=2, steps=2, batch_size=4, warmup=1, seed=3, lr=3e-4)
    assert run_cli([*train_argv(config), "--out", str(tmp_path)], capsys)[0] == 0
    assert RunDir.of(config, tmp_path).finished
    assert load_config(RunDir.of(config, tmp_path)) == config


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same_run(tmp_path):
    argv = ["train", *TINY, "--steps", "150", "--ckpt-every", "25", "--out", str(tmp_path)]
    config = RunConfig(model={"n_dims": 2, "n_layer": 1, "n_head": 2, "n_embd": 16}, n_points=4, cot_steps=3,
                       batch_size=8, steps=150, ckpt_every=25)
    ckpt = RunDir.of(config, tmp_path).checkpoint_file
    proc = subprocess.Popen([sys.executable, "-m", "ttsbook", *argv], env=ENV, stderr=subprocess.PIPE, text=True)
    while not ckpt.exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and err.count("\n") == 1 and "Traceback" not in err, err
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 25 <= step < 150 and f"stopped at step {step} of 150" in err
    command = shlex.split(err.split("resume with: ")[1])
    assert command[:3] == ["python", "-m", "ttsbook"] and command[-1] == "--resume"
    resumed = subprocess.run([sys.executable, *command[1:]], env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = load_run(train_run(config, tmp_path / "straight", device="cpu")).state_dict()
    weights = load_run(RunDir.of(config, tmp_path)).state_dict()
    assert all(torch.equal(weights[k], straight[k]) for k in straight)
